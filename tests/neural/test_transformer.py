"""The tiny transformer's forward: shapes, audio influence, batched passes, diffusers hooks."""

from __future__ import annotations

import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache

from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer


@pytest.fixture(scope="module")
def model() -> InfiniteTalkTransformer:
    torch.manual_seed(0)
    return InfiniteTalkTransformer.from_model_config(TINY).eval()


def _inputs(batch: int = 1, people: int = 1):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 36, 21, 4, 4, generator=g)
    t = torch.full((batch,), 500.0)
    text = torch.randn(batch, 512, TINY.text_dim, generator=g)
    clip = torch.randn(batch, 5, TINY.image_dim, generator=g)
    audio = torch.randn(batch, people, 81, 5, TINY.audio_layers, TINY.audio_dim, generator=g)
    return x, t, text, clip, audio


@torch.no_grad()
def test_forward_shape_and_audio_matters(model) -> None:
    x, t, text, clip, audio = _inputs()
    out = model(x, t, text, clip, audio)
    assert out.shape == (1, 16, 21, 4, 4)
    assert not torch.allclose(out, model(x, t, text, clip, torch.zeros_like(audio)))


@torch.no_grad()
def test_batched_passes_equal_one_at_a_time(model) -> None:
    x, t, text, clip, audio = _inputs(batch=2)
    batched = model(x, t, text, clip, audio)
    single = torch.cat(
        [model(x[i : i + 1], t[:1], text[i : i + 1], clip[i : i + 1], audio[i : i + 1]) for i in range(2)]
    )
    assert torch.allclose(batched, single, atol=1e-5)


@torch.no_grad()
def test_two_speakers_route_with_masks(model) -> None:
    x, t, text, clip, audio = _inputs(people=2)
    masks = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]])  # left / right halves of a 2x2 token frame
    out = model(x, t, text, clip, audio, masks)
    assert out.shape == (1, 16, 21, 4, 4)
    swapped = model(x, t, text, clip, audio.flip(1), masks)  # exchanging the speakers changes the result
    assert not torch.allclose(out, swapped)


@torch.no_grad()
def test_first_block_cache_hooks_the_block() -> None:
    torch.manual_seed(0)
    m = InfiniteTalkTransformer.from_model_config(TINY).eval()
    x, t, text, clip, audio = _inputs()
    reference = m(x, t, text, clip, audio)
    apply_first_block_cache(m, FirstBlockCacheConfig(threshold=0.0))  # threshold 0: never reuse
    with m.cache_context("cond"):
        assert torch.allclose(m(x, t, text, clip, audio), reference, atol=1e-5)


def test_repeated_blocks_are_ours() -> None:
    m = InfiniteTalkTransformer.from_model_config(TINY)
    assert [type(b).__name__ for b in m.blocks] == ["InfiniteTalkBlock"] * TINY.num_layers
    assert m._repeated_blocks == ["InfiniteTalkBlock"]
