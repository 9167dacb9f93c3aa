"""The InfiniteTalk audio adapter: audio_proj, per-frame audio cross-attention, two-speaker routing.

Parameter names and shapes equal the official checkpoint's (``audio_proj.proj1`` ...,
``blocks.{i}.norm_x``, ``blocks.{i}.audio_cross_attn.{q_linear,kv_linear,proj}``), so the
adapter file loads strictly with no key renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from infinitetalk.engines.neural.configs import ModelConfig

#: Rotary positions for two speakers: person 1 maps into [0, 4], person 2 into [20, 24], background 12.
ROPE_PERSON1 = (0.0, 4.0)
ROPE_PERSON2 = (20.0, 24.0)
ROPE_BACKGROUND = 12.0


def select_audio_windows(audio: torch.Tensor, stride: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Split per-video-frame audio windows into the adapter's two inputs.

    ``audio``: [N, F, W, L, C] (W offsets -2..+2 around each of F = 1 + 4k video frames).
    Returns ``first`` [N, 1, W, L, C] (frame 0's full window) and ``later`` [N, k, 8, L, C]:
    per latent frame, the group's first frame gives offsets [-2, -1, 0], the middle frames
    offset 0, the last frame [0, +1, +2].
    """
    n, frames, window, layers, channels = audio.shape
    if (frames - 1) % stride:
        raise ValueError(f"audio covers {frames} frames; need 1 + {stride}k")
    mid = window // 2
    first = audio[:, :1]
    groups = audio[:, 1:].reshape(n, (frames - 1) // stride, stride, window, layers, channels)
    later = torch.cat(
        [groups[:, :, 0, : mid + 1], groups[:, :, 1:-1, mid], groups[:, :, -1, mid:]],
        dim=2,
    )
    return first, later


class AudioProjModel(nn.Module):
    """wav2vec2 windows -> ``audio_tokens`` context tokens of width ``audio_dim`` per latent frame."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        per_vector = cfg.audio_layers * cfg.audio_dim
        self.tokens = cfg.audio_tokens
        self.width = cfg.audio_dim
        self.proj1 = nn.Linear(cfg.audio_window * per_vector, cfg.audio_hidden)
        self.proj1_vf = nn.Linear(cfg.vf_window * per_vector, cfg.audio_hidden)
        self.proj2 = nn.Linear(cfg.audio_hidden, cfg.audio_hidden)
        self.proj3 = nn.Linear(cfg.audio_hidden, cfg.audio_tokens * cfg.audio_dim)
        self.norm = nn.LayerNorm(cfg.audio_dim)

    def forward(self, first: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
        """``first`` [N, 1, 5, L, C], ``later`` [N, T-1, 8, L, C] -> tokens [N, T, tokens, C]."""
        a = torch.relu(self.proj1(first.flatten(2)))
        b = torch.relu(self.proj1_vf(later.flatten(2)))
        x = torch.cat([a, b], dim=1)  # [N, T, hidden]: frame 0 first, then the latent frames
        x = self.proj3(torch.relu(self.proj2(x)))
        return self.norm(x.unflatten(-1, (self.tokens, self.width)))


def rope_1d(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate ``x`` [..., S, D] by scalar (possibly fractional) ``positions`` [S] (or broadcastable)."""
    dim = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=x.device, dtype=torch.float64) / dim))
    angles = positions.to(torch.float64)[..., None] * inv  # [S, D/2]
    cos, sin = angles.cos().to(torch.float32), angles.sin().to(torch.float32)
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return out.type_as(x)


def route_positions(ref_attn: torch.Tensor) -> torch.Tensor:
    """Per-token rotary positions from ``ref_attn`` [..., 3, S] (person 1, person 2, background maps).

    Each person's map is min-max normalised into its range (the official ``normalize_and_scale``:
    ``(m - min) / (max - min + 1e-8)``); the class with the strongest attention picks which value a
    token gets (background: a fixed middle position). Leading dimensions are separate passes.
    """

    def scale(m: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        low, high = m.amin(-1, keepdim=True), m.amax(-1, keepdim=True)
        return lo + (m - low) / (high - low + 1e-8) * (hi - lo)

    p1 = scale(ref_attn[..., 0, :], *ROPE_PERSON1)
    p2 = scale(ref_attn[..., 1, :], *ROPE_PERSON2)
    bg = torch.full_like(p1, ROPE_BACKGROUND)
    choice = ref_attn.argmax(dim=-2, keepdim=True)  # first class wins a tie, as torch's argmax does there
    return torch.stack([p1, p2, bg], dim=-2).gather(-2, choice).squeeze(-2)


def reference_attention(
    q: torch.Tensor, k: torch.Tensor, masks: torch.Tensor, ref_tokens: int, heads_per_step: int = 4
) -> torch.Tensor:
    """How strongly each visual token attends to the first latent frame inside each mask.

    ``q``, ``k``: [B, S, H, D] from the block's self-attention (after norms and rotary);
    ``masks``: [classes, ref_tokens] 0/1 over the first frame's tokens. Returns [B, classes, S]:
    each batch element (guidance pass) gets its own map, as each official pass is its own
    forward. Mean over heads of the mask-averaged softmax; an empty mask gives a zero map
    (the official divides by its empty sum and gets NaN). A few heads at a time, so the
    [heads, S, ref_tokens] attention stays small at full size (40 heads x 33,600 x 1,600).
    """
    b, _, heads, dim = q.shape
    weights = masks.float() / masks.float().sum(-1, keepdim=True).clamp_min(1)  # [C, R]
    out = torch.zeros(b, masks.shape[0], q.shape[1], device=q.device, dtype=torch.float32)
    for i in range(b):
        for h in range(0, heads, heads_per_step):
            qf = q[i, :, h : h + heads_per_step].transpose(0, 1).float()  # [h, S, D]
            kf = k[i, :ref_tokens, h : h + heads_per_step].transpose(0, 1).float()  # [h, R, D]
            attn = torch.softmax(qf @ kf.transpose(-1, -2) / dim**0.5, dim=-1)  # [h, S, R]
            out[i] += torch.einsum("hsr,cr->cs", attn, weights.to(attn.device))
    return out / heads


class AudioCrossAttention(nn.Module):
    """Visual tokens of latent frame t attend to the audio tokens of frame t only (no q/k norm)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.heads = cfg.num_heads
        self.q_linear = nn.Linear(cfg.dim, cfg.dim)
        self.kv_linear = nn.Linear(cfg.audio_dim, 2 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.tokens_per_person = cfg.audio_tokens

    def forward(
        self,
        x: torch.Tensor,
        audio: torch.Tensor,
        frames: int,
        positions: torch.Tensor | None = None,
        routed: tuple[bool, ...] | None = None,
    ) -> torch.Tensor:
        """``x`` [B, frames*S, dim]; ``audio`` [B, frames, people*tokens, audio_dim].

        Two speakers: ``positions`` [B, frames*S] rotate the queries and the audio keys sit at
        the middle of each person's range, for the batch elements that ``routed`` marks; the
        others (a null-audio pass, which the official code runs as one person) get position 0
        on both sides, which is no rotation at all.
        """
        b, n, dim = x.shape
        q = self.q_linear(x).view(b * frames, n // frames, self.heads, -1).transpose(1, 2)
        kv = self.kv_linear(audio.flatten(0, 1))  # [B*frames, A, 2*dim]
        k, v = kv.view(b * frames, -1, 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        if positions is not None:
            people = audio.shape[2] // self.tokens_per_person
            q = rope_1d(q, positions.reshape(b * frames, 1, -1))  # [B*frames, 1, S]
            mids = torch.tensor(
                [sum(ROPE_PERSON1) / 2, sum(ROPE_PERSON2) / 2][:people], device=x.device
            ).repeat_interleave(self.tokens_per_person)
            on = torch.tensor(routed if routed is not None else (True,) * b, device=x.device, dtype=mids.dtype)
            k = rope_1d(k, (on[:, None] * mids[None]).repeat_interleave(frames, dim=0)[:, None])  # [B*frames, 1, A]
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, dim))
