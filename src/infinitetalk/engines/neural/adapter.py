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
    """Per-token rotary positions from ``ref_attn`` [3, S] (person 1, person 2, background maps).

    Each person's map is min-max normalised into its range; the class with the strongest
    attention picks which value a token gets (background: a fixed middle position).
    """

    def scale(m: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        span = (m.max() - m.min()).clamp_min(1e-8)
        return lo + (m - m.min()) / span * (hi - lo)

    p1 = scale(ref_attn[0], *ROPE_PERSON1)
    p2 = scale(ref_attn[1], *ROPE_PERSON2)
    bg = torch.full_like(p1, ROPE_BACKGROUND)
    choice = ref_attn.argmax(dim=0)
    return torch.stack([p1, p2, bg]).gather(0, choice[None])[0]


def reference_attention(q: torch.Tensor, k: torch.Tensor, masks: torch.Tensor, ref_tokens: int) -> torch.Tensor:
    """How strongly each visual token attends to the first latent frame inside each mask.

    ``q``, ``k``: [B, S, H, D] from the block's self-attention (after norms and rotary);
    ``masks``: [classes, ref_tokens] 0/1 over the first frame's tokens. Returns [classes, S]
    (batch element 0; the guidance passes share the same video tokens).
    """
    qf = q[0].transpose(0, 1).float()  # [H, S, D]
    kf = k[0, :ref_tokens].transpose(0, 1).float()  # [H, R, D]
    attn = torch.softmax(qf @ kf.transpose(-1, -2) / qf.shape[-1] ** 0.5, dim=-1)  # [H, S, R]
    weights = masks.to(attn.dtype) / masks.sum(-1, keepdim=True).clamp_min(1)
    return torch.einsum("hsr,cr->cs", attn, weights) / attn.shape[0]


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
        self, x: torch.Tensor, audio: torch.Tensor, frames: int, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x`` [B, frames*S, dim]; ``audio`` [B, frames, people*tokens, audio_dim].

        ``positions`` [frames*S] (two speakers) rotates queries; audio keys then sit at the
        middle of each person's range.
        """
        b, n, dim = x.shape
        q = self.q_linear(x).view(b * frames, n // frames, self.heads, -1).transpose(1, 2)
        kv = self.kv_linear(audio.flatten(0, 1))  # [B*frames, A, 2*dim]
        k, v = kv.view(b * frames, -1, 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        if positions is not None:
            people = audio.shape[2] // self.tokens_per_person
            q = rope_1d(q, positions.view(frames, -1).repeat(b, 1)[:, None])  # [B*frames, 1, S]
            mids = torch.tensor(
                [sum(ROPE_PERSON1) / 2, sum(ROPE_PERSON2) / 2][:people], device=x.device
            ).repeat_interleave(self.tokens_per_person)
            k = rope_1d(k, mids)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim)
        return self.proj(out.transpose(1, 2).reshape(b, n, dim))
