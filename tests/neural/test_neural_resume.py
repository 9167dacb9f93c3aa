"""Issue 11 on the neural engine: a job resumed after a chunk, in a fresh engine, makes the latents and frames of
an uninterrupted run (tiny weights, CPU, 32x32 frames, two steps)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from infinitetalk.engines.base import CancelToken, EngineJob, EngineState, ResumableEngine, Speaker
from infinitetalk.engines.neural.engine import NeuralEngine
from infinitetalk.engines.neural.loop import plan_chunks
from infinitetalk.engines.neural.pipeline import SamplingOptions
from infinitetalk.schema import Mode

pytestmark = pytest.mark.slow  # the tiny model over several chunks: minutes on 2 cores

OPTIONS = SamplingOptions(steps=2)


def _job(mode: Mode, frames: int) -> EngineJob:
    rng = np.random.default_rng(0)
    t = np.arange(frames * 640) / 16000
    audio = (0.2 * np.sin(2 * np.pi * 200 * t) * rng.uniform(0.5, 1.0, t.size)).astype(np.float32)
    y, x = np.mgrid[0:48, 0:40]
    portrait = np.stack([x * 6, y * 5, (x + y) * 3], -1).astype(np.uint8)
    # A source that changes every frame: a resumed run that took the wrong frame for a chunk's reference, or for
    # the colour reference (the first frame), would not make the same frames.
    source = [np.roll(portrait, i, axis=1) // 2 + i % 7 for i in range(frames)]
    video = mode is Mode.VIDEO_TO_VIDEO
    return EngineJob(mode=mode, speakers=[Speaker(audio=audio)], width=32, height=32, fps=25, num_frames=frames,
                     seed=11, image=None if video else portrait, video_frames=(lambda: iter(source)) if video else None)


def _saved_and_loaded(state: EngineState, path: Path) -> EngineState:
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


@pytest.fixture(scope="module")
def engine(tiny_weights) -> NeuralEngine:
    return NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", options=OPTIONS)


# Image-to-video: three chunks, so the resumed run also carries the latents it made itself over. Video-to-video:
# two (keeps the test short), the second made from source frame 72 and coloured after frame 0.
@pytest.mark.parametrize(("mode", "frames"), [(Mode.IMAGE_TO_VIDEO, 81 + 72 + 10), (Mode.VIDEO_TO_VIDEO, 81 + 10)])
def test_resumed_after_the_first_chunk_makes_the_same_latents_and_frames(engine, tiny_weights, mode: Mode,
                                                                         frames: int, tmp_path: Path) -> None:
    """The state after the first chunk, saved and loaded, in a fresh engine: the other chunks as in one run."""
    assert isinstance(engine, ResumableEngine)
    plan = plan_chunks(frames)
    job = _job(mode, frames)
    before: list[float] = []
    straight = []
    for chunk in engine.generate_chunks(job, lambda fraction, stage: before.append(fraction), CancelToken()):
        straight.append(chunk)
        if chunk.index == 0:
            before_save = before[:]  # what the bar showed when the first chunk's state was saved
    assert [(c.index, c.count, len(c.frames)) for c in straight] == [(p.index, len(plan), p.keep) for p in plan]
    assert "motion" in straight[-2].state and "motion" not in straight[-1].state  # the last one carries nothing over

    # Another process picks the job up from the state saved after the first chunk.
    state = _saved_and_loaded(straight[0].state, tmp_path / "state.npz")
    assert state["motion"].dtype == np.float32 and state["generator"].dtype == np.uint8
    fresh = NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", options=OPTIONS)
    after: list[float] = []
    resumed = list(fresh.generate_chunks(job, lambda fraction, stage: after.append(fraction), CancelToken(),
                                         resume=state))

    assert [c.index for c in resumed] == list(range(1, len(plan)))
    for again, once in zip(resumed, straight[1:], strict=True):
        assert np.array_equal(again.frames, once.frames)
        assert again.state.keys() == once.state.keys()
        for key, value in once.state.items():  # the motion latents and the noise generator's state included
            assert np.array_equal(again.state[key], value), key
    assert not np.array_equal(straight[1].state["generator"], state["generator"])  # the noise does move on
    # One bar for the whole job: the resumed run goes on from where the first one stopped.
    assert before_save[-1] == after[0] == 1 / len(plan)
    assert before_save + after == sorted(before_save + after) and after[-1] == 1.0
