"""One job over 2 processes (gloo, CPU, tiny weights, 32x32, two chunks): rank 0 leads (``LeadEngine``),
rank 1 follows; every way a job can end keeps the ranks in step, so the next job still works.

Rank 0 runs, in order: a whole job; the same job resumed after its first chunk; a job canceled at its
first step; a job whose progress callback fails (a heartbeat's database write); a job whose reader stops
after the first chunk (render's segment failed to store); the whole job again. It saves what each gave;
rank 1 saves how many jobs it followed. The parent runs the job on one process and compares.
A rank that raises fails the test at once; one that hangs (out of step) fails it after TIMEOUT_S.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from process_group import run_ranks

from infinitetalk.engines.base import CancelToken, EngineJob, Speaker, no_progress
from infinitetalk.engines.neural.engine import NeuralEngine
from infinitetalk.engines.neural.parallel import enable_parallel
from infinitetalk.engines.neural.pipeline import SamplingOptions
from infinitetalk.engines.ranks import LeadEngine, RankGroup, follow
from infinitetalk.errors import Canceled
from infinitetalk.schema import Mode

pytestmark = pytest.mark.slow  # rank processes, each with the tiny model

TIMEOUT_S = 180
OPTIONS = SamplingOptions(steps=2)
JOBS = 6


def _job() -> EngineJob:
    frames = 81 + 10  # two chunks: 21 latent frames each, split 11 + 10 over two ranks
    t = np.arange(frames * 640) / 16000
    audio = (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t * 9))).astype(np.float32)
    y, x = np.mgrid[0:32, 0:32]
    portrait = np.stack([x * 7, y * 6, (x + y) * 3], -1).astype(np.uint8)
    return EngineJob(mode=Mode.IMAGE_TO_VIDEO, speakers=[Speaker(audio=audio)], width=32, height=32, fps=25,
                     num_frames=frames, seed=5, image=portrait)


def _engine(root: Path) -> NeuralEngine:
    return NeuralEngine.from_pretrained(root, device="cpu", options=OPTIONS)


def _lead(engine: LeadEngine) -> dict:
    job, out = _job(), {}
    whole = list(engine.generate_chunks(job, no_progress, CancelToken()))
    out["whole"] = [(c.frames, c.state) for c in whole]
    out["resumed"] = [(c.frames, c.state) for c in engine.generate_chunks(job, no_progress, CancelToken(),
                                                                           resume=whole[0].state)]
    token = CancelToken()

    def cancel_at_first_step(fraction: float, stage: str) -> None:
        if "step 1/" in stage:
            token.cancel()

    try:
        list(engine.generate_chunks(job, cancel_at_first_step, token))
    except Canceled:
        out["canceled"] = True

    def heartbeat_fails(fraction: float, stage: str) -> None:
        if "step 1/" in stage:
            raise RuntimeError("the database is down")

    try:
        list(engine.generate_chunks(job, heartbeat_fails, CancelToken()))
    except RuntimeError as exc:
        out["progress_error"] = str(exc)

    reader = engine.generate_chunks(job, no_progress, CancelToken())
    out["first_only"] = next(reader).index
    reader.close()

    out["again"] = [c.frames for c in engine.generate_chunks(job, no_progress, CancelToken())]
    return out


def _rank(rank: int, root: str, out: str) -> None:
    engine = _engine(Path(root))
    enable_parallel(engine.pipeline.transformer)
    ranks = RankGroup()
    if rank == 0:
        try:
            results = _lead(LeadEngine(engine, ranks))
        finally:
            ranks.release()
    else:
        results = {"followed": follow(engine, ranks)}
    torch.save(results, f"{out}.{rank}")


@pytest.fixture(scope="module")
def led(tiny_weights, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("ranks") / "results.pt"
    run_ranks(_rank, (str(tiny_weights.root), str(out)), world=2, timeout_s=TIMEOUT_S)
    return torch.load(f"{out}.0", weights_only=False), torch.load(f"{out}.1", weights_only=False)


@pytest.fixture(scope="module")
def one_process(tiny_weights) -> list:
    return list(_engine(tiny_weights.root).generate_chunks(_job(), no_progress, CancelToken()))


def _same_frames(got: np.ndarray, expected: np.ndarray) -> None:
    # the parallel forward sums in another order (fp32, ~1e-6); a pixel may round the other way
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_a_shared_job_makes_the_one_process_video(led, one_process) -> None:
    lead, _ = led
    assert len(lead["whole"]) == len(one_process) == 2
    for (frames, state), expected in zip(lead["whole"], one_process, strict=True):
        _same_frames(frames, expected.frames)
        assert state.keys() == expected.state.keys()
        assert np.array_equal(state["generator"], expected.state["generator"])  # every rank drew the same noise
    np.testing.assert_allclose(lead["whole"][0][1]["motion"], one_process[0].state["motion"], atol=1e-4)


def test_a_shared_job_resumes_after_a_chunk(led) -> None:
    lead, _ = led
    ((frames, _),) = lead["resumed"]
    assert np.array_equal(frames, lead["whole"][1][0])


def test_every_way_a_job_ends_leaves_the_ranks_in_step(led) -> None:
    lead, follower = led
    assert lead["canceled"]
    assert lead["progress_error"] == "the database is down"  # rank 0's own error, raised once every rank stopped
    assert lead["first_only"] == 0
    # the last job ran after all of those, on both ranks, and made the first job's video again
    for frames, (expected, _) in zip(lead["again"], lead["whole"], strict=True):
        assert np.array_equal(frames, expected)
    assert follower["followed"] == JOBS

