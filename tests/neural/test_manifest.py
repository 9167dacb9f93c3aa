"""The full-size model and the manifest agree with the published state-dict listing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

from infinitetalk.engines.neural.configs import FULL
from infinitetalk.engines.neural.manifest import manifest
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

REFERENCE = Path("/work/shared/reference/infinitetalk-14b-state-dict.tsv")


def _reference() -> dict[str, tuple[tuple[int, ...], str]]:
    rows = REFERENCE.read_text().splitlines()[1:]
    return {k: (tuple(int(x) for x in s.split("x")), p) for k, s, p in (r.split("\t") for r in rows)}


def test_manifest_counts() -> None:
    m = manifest(FULL)
    assert len(m) == 1633
    base = sum(math.prod(s) for s, p in m.values() if p == "wan-i2v-14b")
    adapter = sum(math.prod(s) for s, p in m.values() if p == "infinitetalk")
    assert (base, adapter) == (16_394_878_784, 2_487_168_000)
    assert sum(p == "infinitetalk" for _, p in m.values()) == 330


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference listing is not on this machine")
def test_manifest_equals_published_listing() -> None:
    assert manifest(FULL) == _reference()


def test_full_model_on_meta_has_exactly_the_manifest() -> None:
    with torch.device("meta"):
        model = InfiniteTalkTransformer.from_model_config(FULL)
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert len(model_shapes) == 1633
    assert sum(p.numel() for p in model.parameters()) == 16_394_878_784 + 2_487_168_000
    adapter_params = sum(p.numel() for n, p in model.named_parameters() if "audio" in n or "norm_x" in n)
    assert adapter_params == 2_487_168_000

    m = manifest(FULL)
    base = {k: torch.empty(s, device="meta") for k, (s, part) in m.items() if part == "wan-i2v-14b"}
    expected = {k: tuple(v.shape) for k, v in convert_wan_transformer_to_diffusers(base).items()}
    expected.update({k: s for k, (s, part) in m.items() if part == "infinitetalk"})  # adapter: same names
    assert model_shapes == expected
