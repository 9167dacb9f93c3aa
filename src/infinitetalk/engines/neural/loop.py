"""Long-video bookkeeping: which frames each 81-frame chunk covers, keeps and conditions on.

Chunk k starts at video frame 72k; every chunk after the first re-generates the 9 frames it
is conditioned on (the last 9 decoded frames of the previous chunk) and drops them from its
output. When the audio runs out inside a chunk, its audio embedding is padded by mirroring
the last frames and the output is trimmed to the audio length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def pad_mirror(emb: torch.Tensor, length: int) -> torch.Tensor:
    """Extend ``emb`` [T, ...] to ``length`` rows by reflecting its tail (t, t-1, ...), repeating as needed."""
    if emb.shape[0] >= length:
        return emb[:length]
    idx = list(range(emb.shape[0]))
    back = idx[::-1][1:] or [0]
    fwd = idx[1:] or [0]
    pattern, i = [], 0
    while len(idx) + len(pattern) < length:
        seq = back if (i % 2 == 0) else fwd
        pattern.extend(seq[: length - len(idx) - len(pattern)])
        i += 1
    return emb[torch.tensor(idx + pattern)]


def _rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)


def color_match(frames: np.ndarray, reference: np.ndarray, strength: float) -> np.ndarray:
    """Move each frame's Lab mean/std towards the reference's (uint8 RGB [N, H, W, 3])."""
    if strength <= 0:
        return frames
    import cv2

    ref = _rgb_to_lab(reference).reshape(-1, 3)
    r_mean, r_std = ref.mean(0), ref.std(0) + 1e-6
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        lab = _rgb_to_lab(frame)
        flat = lab.reshape(-1, 3)
        mean, std = flat.mean(0), flat.std(0) + 1e-6
        moved = (lab - mean) / std * r_std + r_mean
        mixed = np.clip(lab + strength * (moved - lab), 0, 255).astype(np.uint8)
        out[i] = cv2.cvtColor(mixed, cv2.COLOR_LAB2RGB)
    return out
