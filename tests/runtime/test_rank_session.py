"""``launch.rank_session``, the one sequence both ``generate --gpus`` and ``worker --gpus-per-job`` run in each
rank: join, load, share; rank 0 leads, the others follow until it lets them go, whether its lead returned or
raised; then every rank has left the process group. Two CPU ranks over gloo, on tiny weights, running no job."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from infinitetalk.config import Settings
from infinitetalk.engines.ranks import LeadEngine
from infinitetalk.runtime import launch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "neural"))
from neural_factories import write_weights
from process_group import run_ranks

TIMEOUT_S = 120


def _session(rank: int, root: str, out: str, lead_raises: bool) -> None:
    import torch.distributed as dist

    from infinitetalk.engines.neural.engine import NeuralEngine

    def lead(engine: object) -> str:
        assert isinstance(engine, LeadEngine)
        if lead_raises:
            raise RuntimeError("the worker's database is gone")
        return "led"

    def load() -> NeuralEngine:
        return NeuralEngine.from_pretrained(root, device="cpu")

    try:
        got = launch.rank_session(Settings(neural_compile=False), load, lead)
    except RuntimeError as exc:
        got = f"raised: {exc}"
    torch.save({"got": got, "still_joined": dist.is_initialized()}, f"{out}.{rank}")


def _run(root: Path, out: Path, lead_raises: bool) -> list[dict]:
    run_ranks(_session, (str(root), str(out), lead_raises), world=2, timeout_s=TIMEOUT_S, join=False)
    return [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(2)]


def test_rank_0_leads_the_others_follow_and_all_leave(tmp_path: Path) -> None:
    root = write_weights(tmp_path / "weights", variants=("single",)).root
    assert _run(root, tmp_path / "led", lead_raises=False) == [
        {"got": "led", "still_joined": False}, {"got": None, "still_joined": False}]
    # a lead that fails (a worker whose store went away) still lets the followers go
    assert _run(root, tmp_path / "failed", lead_raises=True) == [
        {"got": "raised: the worker's database is gone", "still_joined": False},
        {"got": None, "still_joined": False}]
