from __future__ import annotations

import torch
from neural_factories import write_adapter, write_base
from safetensors.torch import save_file

from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.lora import LoraDelta
from infinitetalk.engines.neural.weights import WeightsLayout, load_transformer


def test_merge_arithmetic_by_hand() -> None:
    down = torch.tensor([[1.0, 2.0]])  # rank 1, in 2
    up = torch.tensor([[1.0], [3.0]])  # out 2
    d = LoraDelta()
    d.add(
        {
            "diffusion_model.m.lora_down.weight": down,
            "diffusion_model.m.lora_up.weight": up,
            "diffusion_model.m.alpha": torch.tensor(2.0),
            "diffusion_model.m.diff_b": torch.tensor([0.5, -0.5]),
            "diffusion_model.n.diff": torch.ones(2, 2),
            "diffusion_model.mod.diff": torch.full((1, 2), 0.25),
        },
        scale=0.5,
    )
    w = torch.zeros(2, 2)
    # wan/wan_lora.py: delta = up @ down * scale; the file's alpha is ignored: 0.5 * [[1, 2], [3, 6]]
    assert d.apply("m.weight", w).tolist() == [[0.5, 1.0], [1.5, 3.0]]
    assert d.apply("m.bias", torch.zeros(2)).tolist() == [0.25, -0.25]
    assert d.apply("n.weight", w).tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert d.apply("mod", torch.zeros(1, 2)).tolist() == [[0.125, 0.125]]
    assert d.apply("other.weight", w) is w


def test_loader_merges_lora(tmp_path) -> None:
    g = torch.Generator().manual_seed(2)
    layout = WeightsLayout(tmp_path)
    base = write_base(layout, TINY, g)
    write_adapter(layout, TINY, g)
    rank = 2
    down, up = torch.randn(rank, TINY.dim, generator=g), torch.randn(TINY.dim, rank, generator=g)
    lora = tmp_path / "lightx2v.safetensors"
    save_file(
        {
            "diffusion_model.blocks.0.self_attn.q.lora_down.weight": down,
            "diffusion_model.blocks.0.self_attn.q.lora_up.weight": up,
        },
        str(lora),
    )
    model = load_transformer(layout, dtype=torch.float32, loras={lora: 1.5})
    expected = base["blocks.0.self_attn.q.weight"] + 1.5 * up @ down
    assert torch.allclose(model.blocks[0].attn1.to_q.weight, expected, atol=1e-6)
    assert torch.equal(model.blocks[1].attn1.to_q.weight, base["blocks.1.self_attn.q.weight"])
