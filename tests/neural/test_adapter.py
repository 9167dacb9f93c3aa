"""Audio window selection, audio_proj shapes, per-frame attention and two-speaker routing."""

from __future__ import annotations

import torch

from infinitetalk.engines.neural.adapter import (
    AudioCrossAttention,
    AudioProjModel,
    rope_1d,
    route_positions,
    select_audio_windows,
)
from infinitetalk.engines.neural.audio import audio_windows
from infinitetalk.engines.neural.configs import TINY


def test_window_selection_by_hand() -> None:
    # Encode (frame, offset) in the values: emb[t] = t, so window value = clamp(t + offset).
    emb = torch.arange(100, dtype=torch.float32)[:, None, None]  # [T, L=1, C=1]
    windows = audio_windows(emb, start=0, frames=81)  # [81, 5, 1, 1]
    assert windows[0, :, 0, 0].tolist() == [0, 0, 0, 1, 2]  # clamped at the start
    first, later = select_audio_windows(windows[None])
    assert first.shape == (1, 1, 5, 1, 1) and later.shape == (1, 20, 8, 1, 1)
    assert first[0, 0, :, 0, 0].tolist() == [0, 0, 0, 1, 2]
    # latent frame 1 covers video frames 1..4: frame 1 offsets -2,-1,0; frames 2,3 offset 0; frame 4 offsets 0,+1,+2
    assert later[0, 0, :, 0, 0].tolist() == [0, 0, 1, 2, 3, 4, 5, 6]
    # latent frame 20 covers video frames 77..80
    assert later[0, 19, :, 0, 0].tolist() == [75, 76, 77, 78, 79, 80, 81, 82]


def test_windows_of_a_later_chunk_start_at_its_frame() -> None:
    emb = torch.arange(200, dtype=torch.float32)[:, None, None]
    w = audio_windows(emb, start=72, frames=81)
    assert w[0, :, 0, 0].tolist() == [70, 71, 72, 73, 74]
    assert w[-1, :, 0, 0].tolist() == [150, 151, 152, 153, 154]


def test_audio_proj_shapes() -> None:
    proj = AudioProjModel(TINY)
    first = torch.randn(3, 1, 5, TINY.audio_layers, TINY.audio_dim)
    later = torch.randn(3, 20, 8, TINY.audio_layers, TINY.audio_dim)
    assert proj(first, later).shape == (3, 21, TINY.audio_tokens, TINY.audio_dim)


def test_audio_attention_is_per_latent_frame() -> None:
    torch.manual_seed(0)
    attn = AudioCrossAttention(TINY)
    frames, per = 3, 4
    x = torch.randn(1, frames * per, TINY.dim)
    audio = torch.randn(1, frames, TINY.audio_tokens, TINY.audio_dim)
    base = attn(x, audio, frames)
    changed = audio.clone()
    changed[:, 1] += 1.0  # only frame 1's audio
    out = attn(x, changed, frames)
    diff = (out - base).abs().sum(-1)[0]
    assert torch.all(diff[:per] == 0) and torch.all(diff[2 * per :] == 0)
    assert torch.all(diff[per : 2 * per] > 0)


def test_routing_positions() -> None:
    # token 0 looks at person 1 strongest, token 1 at person 2, token 2 at the background
    ref = torch.tensor([[0.9, 0.1, 0.2, 0.5], [0.1, 0.8, 0.2, 0.1], [0.0, 0.1, 0.6, 0.2]])
    pos = route_positions(ref)
    assert torch.allclose(pos, torch.tensor([4.0, 24.0, 12.0, 0.0 + (0.5 - 0.1) / 0.8 * 4]))


def test_rope_1d_is_a_rotation() -> None:
    x = torch.randn(2, 5, 8)
    y = rope_1d(x, torch.arange(5).float())
    assert torch.allclose(x.norm(dim=-1), y.norm(dim=-1), atol=1e-5)
    assert torch.allclose(y[:, 0], x[:, 0])  # position 0: identity
