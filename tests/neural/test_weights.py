"""Strict loading of the transformer from base shards (original names) + adapter file."""

from __future__ import annotations

import json

import pytest
import torch
from neural_factories import write_adapter, write_base
from safetensors.torch import save_file

from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.verify import verify
from infinitetalk.engines.neural.weights import WeightsLayout, load_transformer
from infinitetalk.errors import EngineError


def _layout(tmp_path):
    g = torch.Generator().manual_seed(1)
    layout = WeightsLayout(tmp_path)
    base = write_base(layout, TINY, g, shards=3)
    adapter = write_adapter(layout, TINY, g, "single")
    return layout, base, adapter


def test_strict_load_puts_every_tensor_in_place(tmp_path) -> None:
    layout, base, adapter = _layout(tmp_path)
    model = load_transformer(layout, device="cpu", dtype=torch.float32)
    sd = model.state_dict()
    assert len(sd) == len(base) + len(adapter)
    assert torch.equal(sd["blocks.1.attn1.to_q.weight"], base["blocks.1.self_attn.q.weight"])
    assert torch.equal(sd["blocks.0.attn2.add_k_proj.weight"], base["blocks.0.cross_attn.k_img.weight"])
    # Wan's norm3 is the cross-attention norm: diffusers calls it norm2
    assert torch.equal(sd["blocks.0.norm2.weight"], base["blocks.0.norm3.weight"])
    assert torch.equal(sd["proj_out.weight"], base["head.head.weight"])
    assert torch.equal(
        sd["blocks.1.audio_cross_attn.kv_linear.weight"], adapter["blocks.1.audio_cross_attn.kv_linear.weight"]
    )
    assert torch.equal(sd["audio_proj.proj1_vf.weight"], adapter["audio_proj.proj1_vf.weight"])
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))


def test_bf16_load_keeps_norms_fp32(tmp_path) -> None:
    layout, base, _ = _layout(tmp_path)
    model = load_transformer(layout, device="cpu", dtype=torch.bfloat16)
    assert model.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert model.blocks[0].norm_x.weight.dtype == torch.float32
    assert model.scale_shift_table.dtype == torch.float32
    assert torch.equal(model.blocks[0].attn1.to_q.weight, base["blocks.0.self_attn.q.weight"].bfloat16())


def test_missing_tensor_is_reported(tmp_path) -> None:
    layout, _, adapter = _layout(tmp_path)
    adapter.pop("blocks.1.norm_x.bias")
    save_file(adapter, str(layout.adapter("single")))
    with pytest.raises(EngineError, match=r"lack 1 tensors.*blocks\.1\.norm_x\.bias"):
        load_transformer(layout, dtype=torch.float32)
    problems = {c.name: c.problems for c in verify(tmp_path)}
    assert problems["InfiniteTalk single adapter"] == ["1 missing tensors: blocks.1.norm_x.bias"]


def test_wrong_shape_is_reported(tmp_path) -> None:
    layout, base, _ = _layout(tmp_path)
    shard = layout.base_shards[0]
    from safetensors.torch import load_file

    part = load_file(str(shard))
    key = next(k for k in part if k.endswith("ffn.0.weight"))
    part[key] = torch.zeros(7, TINY.dim)
    save_file(part, str(shard))
    with pytest.raises(EngineError, match="ffn"):
        load_transformer(layout, dtype=torch.float32)
    problems = {c.name: c.problems for c in verify(tmp_path)}
    assert problems["Wan2.1 I2V base (config + shards)"] == [
        f"{key}: shape (7, {TINY.dim}), expected ({TINY.ffn_dim}, {TINY.dim})"
    ]


def test_missing_adapter_says_how_to_fix(tmp_path) -> None:
    layout, _, _ = _layout(tmp_path)
    with pytest.raises(EngineError, match="infinitetalk models download"):
        load_transformer(layout, variant="multi")


def test_non_i2v_base_is_refused(tmp_path) -> None:
    layout, _, _ = _layout(tmp_path)
    cfg = json.loads(layout.base_config.read_text())
    layout.base_config.write_text(json.dumps({**cfg, "model_type": "t2v"}))
    with pytest.raises(EngineError, match="image-to-video"):
        load_transformer(layout)


def test_verify_complete_folder(tiny_weights) -> None:
    checks = verify(tiny_weights.root, ("single", "multi"))
    assert [c.problems for c in checks] == [[]] * 8


def test_verify_reads_no_tensor_data(tiny_weights, monkeypatch) -> None:
    # .pth files must be memory-mapped (shapes only); safetensors are read through headers
    calls = []
    orig_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("mmap")) or orig_load(*a, **k))
    assert all(c.ok for c in verify(tiny_weights.root))
    assert calls and all(calls)
