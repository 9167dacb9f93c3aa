"""Long-video bookkeeping: which frames each 81-frame chunk covers, keeps and conditions on.

Chunk k starts at video frame 72k; every chunk after the first re-generates the 9 frames it
is conditioned on (the last 9 decoded frames of the previous chunk) and drops them from its
output. When the audio runs out inside a chunk, its audio embedding is padded with its own
tail reversed (the last row first) and the output is trimmed to the audio length. Colour
correction pulls each decoded chunk towards the first reference frame's Lab statistics.
All three follow ``wan/multitalk.py`` and ``wan/utils/multitalk_utils.py`` of MeiGen-AI/InfiniteTalk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CHUNK_FRAMES = 81
MOTION_FRAMES = 9


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first video frame this chunk generates (including re-generated motion frames)
    keep_from: int  # first frame of the chunk that is new output (0 for the first chunk, else MOTION_FRAMES)
    keep: int  # how many frames of this chunk go to the output

    @property
    def motion(self) -> bool:
        return self.index > 0


def plan_chunks(num_frames: int, chunk: int = CHUNK_FRAMES, motion: int = MOTION_FRAMES) -> list[Chunk]:
    """Chunks covering ``num_frames`` output frames."""
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    advance = chunk - motion
    out: list[Chunk] = []
    produced = 0
    while produced < num_frames:
        k = len(out)
        keep_from = 0 if k == 0 else motion
        new = min(chunk - keep_from, num_frames - produced)
        out.append(Chunk(index=k, start=k * advance, keep_from=keep_from, keep=new))
        produced += new
    return out


def pad_audio_tail(emb: torch.Tensor, end: int) -> torch.Tensor:
    """The official end-of-audio padding, for a last chunk that ends at video frame ``end``.

    ``emb`` [T, ...] holds one row per video frame. When ``end >= T`` the official loop appends
    ``end - T + 3`` rows: ``flip(emb[-(end - T + 3):])``, i.e. row ``T + i`` is ``emb[T - 1 - i]``
    (the last row repeated once, then backwards), so every +-2 window of the chunk reads real
    rows. Before that it clamps windows to row ``T - 1``, which is the same first padded row,
    so padding up front gives the official windows for every chunk. Where the official code
    would run out of rows to reverse (``end - T + 3 > T``; it refuses audio of 81 frames or
    less) the reflection continues forwards again (period ``2T``).
    """
    rows = emb.shape[0]
    if end < rows:
        return emb
    total = end + 3
    j = torch.arange(total) % (2 * rows)
    return emb[torch.where(j < rows, j, 2 * rows - 1 - j)]


# sRGB (D65, 2-degree observer) <-> CIE Lab, the conversions of scikit-image's rgb2lab/lab2rgb
# that the official colour correction calls (skimage.color.colorconv).
_XYZ_FROM_RGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """[..., 3] sRGB in [0, 1] -> [..., 3] Lab."""
    m = torch.tensor(_XYZ_FROM_RGB, dtype=rgb.dtype, device=rgb.device)
    white = torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device)
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4, rgb / 12.92)
    xyz = (lin @ m.T) / white
    f = torch.where(xyz > 0.008856, xyz.clamp_min(0.008856) ** (1.0 / 3.0), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f.unbind(-1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """[..., 3] Lab -> [..., 3] sRGB clipped to [0, 1] (z < 0 set to 0 first, as skimage does)."""
    m = torch.tensor(_XYZ_FROM_RGB, dtype=lab.dtype, device=lab.device)
    white = torch.tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device)
    L, a, b = lab.unbind(-1)
    fy = (L + 16.0) / 116.0
    f = torch.stack([a / 500.0 + fy, fy, (fy - b / 200.0).clamp_min(0)], dim=-1)
    xyz = torch.where(f > 0.2068966, f**3, (f - 16.0 / 116.0) / 7.787) * white
    lin = xyz @ torch.linalg.inv(m).T
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, lin * 12.92)
    return rgb.clamp(0.0, 1.0)


def color_correct(video: torch.Tensor, reference: torch.Tensor, strength: float) -> torch.Tensor:
    """The official colour correction (``match_and_blend_colors``) on float frames.

    ``video`` [1, 3, F, H, W] and ``reference`` [1, 3, H, W] in [-1, 1]. Per frame and Lab
    channel: ``(x - mean) * std_ref / std + mean_ref`` (population std; a flat channel becomes
    ``mean_ref``), back to RGB clipped to [0, 1], then blended in RGB:
    ``(1 - strength) * frame + strength * corrected``. Float64 per frame, on the frames' device.
    """
    if strength <= 0:
        return video
    if strength > 1:
        raise ValueError(f"colour correction strength must be in [0, 1], got {strength}")
    ref = rgb_to_lab(((reference[0].double() + 1.0) / 2.0).clamp(0, 1).permute(1, 2, 0))
    r_mean, r_std = ref.mean((0, 1)), ref.std((0, 1), correction=0)
    out = torch.empty_like(video)
    for i in range(video.shape[2]):
        src = ((video[0, :, i].double() + 1.0) / 2.0).clamp(0, 1).permute(1, 2, 0)
        lab = rgb_to_lab(src)
        mean, std = lab.mean((0, 1)), lab.std((0, 1), correction=0)
        # A flat channel (std 0 up to rounding) takes the reference's mean; the official code tests
        # std == 0 exactly, so there its result hangs on the rounding of a mean of equal numbers.
        moved = torch.where(std > 1e-6, (lab - mean) * (r_std / std) + r_mean, r_mean.expand_as(lab))
        blended = (1.0 - strength) * src + strength * lab_to_rgb(moved)
        out[0, :, i] = (blended * 2.0 - 1.0).permute(2, 0, 1).to(out.dtype)
    return out
