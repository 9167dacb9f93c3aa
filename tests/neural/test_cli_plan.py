"""``infinitetalk models plan``: the planner's table for a card."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from infinitetalk.cli.main import app


def _rows(output: str) -> list[list[str]]:
    return [line.split("  ") for line in output.splitlines() if line.startswith("480p")]


@pytest.mark.slow  # ~5 s alone on 2 busy cores: weights, VAE and FLOP traces
def test_plan_table_for_a_24_and_an_80_gb_card() -> None:
    args = ["models", "plan", "--resolution", "480p", "--mode", "i2v", "--speakers", "1", "--sampling", "fast-1p"]
    small = CliRunner().invoke(app, [*args, "--gpu-memory", "24"])
    assert small.exit_code == 0, small.output
    (row,) = _rows(small.output)
    cells = [c.strip() for c in row if c.strip()]
    assert cells[:5] == ["480p 640x640", "i2v", "1", "fast-1p", cells[4]]
    assert float(cells[4]) > 40  # the 14B weights alone are ~30 GB in bf16, the T5 encoder ~10 GB more
    assert cells[5] == "no" and cells[6] == "INFINITETALK_NEURAL_OFFLOAD=true"
    assert float(cells[7]) <= 22  # offloaded, it fits with the 2 GB of headroom
    # 4 steps x 1.89 PFLOP per 2.88 s of video, and that over 989 TFLOP/s, and at 40% of it
    assert float(cells[9]) == pytest.approx(2.6, abs=0.1)
    assert float(cells[10]) == pytest.approx(2.6 / 0.989, abs=0.1)
    assert float(cells[11]) == pytest.approx(2.6 / 0.989 / 0.4, abs=0.2)

    big = CliRunner().invoke(app, [*args, "--gpu-memory", "80"])
    (row,) = _rows(big.output)
    assert [c.strip() for c in row if c.strip()][5] == "yes"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the visible GPU's memory is the default")
def test_plan_needs_the_card_memory_without_a_gpu() -> None:
    result = CliRunner().invoke(app, ["models", "plan"])
    assert result.exit_code != 0
    assert "--gpu-memory" in result.output


def test_plan_refuses_an_unknown_resolution() -> None:
    result = CliRunner().invoke(app, ["models", "plan", "--gpu-memory", "80", "--resolution", "1080p"])
    assert result.exit_code != 0
    assert "480p, 576p or 720p" in result.output
