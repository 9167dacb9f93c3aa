"""The tiny transformer's forward: shapes, audio influence, batched passes, diffusers hooks."""

from __future__ import annotations

import pytest
import torch
from diffusers.hooks import FirstBlockCacheConfig, apply_first_block_cache

from infinitetalk.engines.neural.adapter import reference_attention, route_positions
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


# Two speakers on a 2x2-token frame: person 1 top-left, person 2 top-right, the bottom row background.
MASKS = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])


@torch.no_grad()
@pytest.mark.slow  # over 10 s on 2 busy cores
def test_null_audio_pass_is_one_person_and_unrouted(model) -> None:
    """wan/multitalk.py passes ``torch.zeros_like(audio_embs)[-1:]``: one person, so human_num == 1 and the
    audio attention is the plain one (no rotary routing, masks unused) even for a two-speaker job."""
    x, t, text, clip, audio = _inputs(batch=2, people=2)
    x = x[:1].expand(2, -1, -1, -1, -1)  # the guidance passes share the latents
    null = torch.zeros_like(audio[0, -1:])  # [1 person, F, 5, L, C]
    batched = model(x, t, text, clip, [audio[0], null], MASKS)
    # the official null pass: one person's zeros, plain attention (no masks at all)
    official_null = model(x[:1], t[:1], text[1:], clip[1:], null[None], None)
    assert torch.allclose(batched[1:], official_null, atol=1e-5)
    # the cond pass is routed with its own map, as if run alone
    assert torch.allclose(batched[:1], model(x[:1], t[:1], text[:1], clip[:1], audio[:1], MASKS), atol=1e-5)
    # what we did before: zeros for both people, routed - a different prediction
    both_routed = model(x[:1], t[:1], text[1:], clip[1:], torch.zeros_like(audio[:1]), MASKS)
    assert not torch.allclose(both_routed, official_null, atol=1e-3)


@torch.no_grad()
def test_each_batched_pass_routes_with_its_own_map(model) -> None:
    """Each official pass is its own forward, so each computes its own reference-attention map."""
    x, t, text, clip, audio = _inputs(batch=2, people=2)
    batched = model(x, t, text, clip, audio, MASKS)
    alone = torch.cat(
        [model(x[i : i + 1], t[:1], text[i : i + 1], clip[i : i + 1], audio[i : i + 1], MASKS) for i in (0, 1)]
    )
    assert torch.allclose(batched, alone, atol=1e-5)


def test_reference_attention_per_pass_matches_the_official_formula() -> None:
    """calculate_x_ref_attn_map (wan/utils/multitalk_utils.py), written out per head: softmax(q k_ref^T / sqrt(d)),
    each class's mask-weighted sum over the reference tokens divided by the mask's size, mean over heads."""
    g = torch.Generator().manual_seed(3)
    b, s, heads, d, ref = 2, 12, 6, 8, 4
    q, k = torch.randn(b, s, heads, d, generator=g), torch.randn(b, s, heads, d, generator=g)
    got = reference_attention(q, k, MASKS, ref, heads_per_step=4)  # 4 does not divide 6: a short last step
    for i in range(b):
        expected = torch.zeros(3, s)
        for h in range(heads):
            attn = torch.softmax(q[i, :, h] @ k[i, :ref, h].T / d**0.5, dim=-1)  # [s, ref]
            for c in range(3):
                expected[c] += (attn * MASKS[c]).sum(-1) / MASKS[c].sum()
        assert torch.allclose(got[i], expected / heads, atol=1e-6)
    assert not torch.allclose(got[0], got[1])
    # positions per pass: the same as routing each pass alone
    assert torch.equal(route_positions(got), torch.stack([route_positions(got[0]), route_positions(got[1])]))


def test_empty_background_gives_no_nan() -> None:
    """Two boxes covering the whole frame leave no background; the official map divides by 0 there (NaN)."""
    q, k = torch.randn(1, 8, 2, 4), torch.randn(1, 8, 2, 4)
    masks = torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0]])
    maps = reference_attention(q, k, masks, 4)
    assert torch.isfinite(maps).all() and torch.all(maps[0, 2] == 0)
    assert torch.all(route_positions(maps) != 12.0)  # the background never wins
