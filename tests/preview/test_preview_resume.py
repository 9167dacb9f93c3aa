"""Issue 11 on the preview engine: a job resumed after any chunk, in a fresh engine, makes the same frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from infinitetalk.engines.base import CancelToken, EngineJob, EngineState, ResumableEngine, Speaker
from infinitetalk.engines.preview import PreviewEngine
from infinitetalk.engines.preview.engine import PREVIEW_CHUNK_FRAMES
from infinitetalk.media.audio import decode_audio
from infinitetalk.schema import Mode

pytestmark = pytest.mark.slow  # renders four chunks twice

W, H = 192, 224
FRAMES = 3 * PREVIEW_CHUNK_FRAMES + 30  # four chunks, the last one shorter


@pytest.fixture(scope="module")
def portrait(grace_hopper_path: Path) -> np.ndarray:
    return np.asarray(Image.open(grace_hopper_path).convert("RGB").resize((W, H), Image.LANCZOS))


@pytest.fixture(scope="module")
def speech(speech_wav: Path) -> np.ndarray:
    audio = decode_audio(speech_wav, sample_rate=16_000)
    return np.resize(audio, FRAMES * 640)  # the sentence again until the video ends


def _source(portrait: np.ndarray) -> list[np.ndarray]:
    """The portrait panned, turned and zoomed a little, differently in every frame, so the tracker, the neutral
    mouth and the rigs (rebuilt when the face changes shape) carry state across the chunk boundaries."""
    frames = []
    for i in range(FRAMES):
        t = i / 25
        m = cv2.getRotationMatrix2D((W / 2, H / 2), 3 * np.sin(0.9 * t), 1 + 0.06 * np.sin(0.5 * t))
        m[:, 2] += (6 * np.sin(1.3 * t), 3 * np.cos(0.7 * t))
        frames.append(cv2.warpAffine(portrait, m, (W, H), borderMode=cv2.BORDER_REFLECT))
    return frames


def _job(mode: Mode, portrait: np.ndarray, speech: np.ndarray) -> EngineJob:
    source = _source(portrait) if mode is Mode.VIDEO_TO_VIDEO else None
    return EngineJob(mode=mode, speakers=[Speaker(audio=speech)], width=W, height=H, fps=25, num_frames=FRAMES,
                     seed=7, image=source[0] if source else portrait,
                     video_frames=(lambda: iter(source)) if source else None)


def _saved_and_loaded(state: EngineState, path: Path) -> EngineState:
    np.savez(path, **state)
    with np.load(path, allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


@pytest.mark.parametrize("mode", [Mode.IMAGE_TO_VIDEO, Mode.VIDEO_TO_VIDEO])
def test_resumed_after_a_chunk_makes_the_same_frames(mode: Mode, portrait: np.ndarray, speech: np.ndarray,
                                                     tmp_path: Path) -> None:
    job = _job(mode, portrait, speech)
    engine = PreviewEngine()
    assert isinstance(engine, ResumableEngine)
    straight = list(engine.generate_chunks(job, lambda *_: None, CancelToken()))
    assert [(c.index, c.count, len(c.frames)) for c in straight] == [(0, 4, 72), (1, 4, 72), (2, 4, 72), (3, 4, 30)]
    video = np.concatenate([c.frames for c in straight])
    assert np.array_equal(video, np.stack(list(engine.generate(job, lambda *_: None, CancelToken()))))
    assert np.abs(video.astype(int) - video[:1]).max() > 50  # the face does move

    # The run makes chunk 2 and stops before its state is saved; another engine picks the job up after chunk 1.
    fractions: list[float] = []
    interrupted = engine.generate_chunks(job, lambda fraction, stage: fractions.append(fraction), CancelToken())
    saved = next(interrupted), next(interrupted)
    at_save = fractions[:]  # what the bar showed when chunk 1's state was saved
    assert np.array_equal(next(interrupted).frames, straight[2].frames)
    interrupted.close()
    state = _saved_and_loaded(saved[1].state, tmp_path / "state.npz")
    resumed_fractions: list[float] = []
    resumed = list(PreviewEngine().generate_chunks(job, lambda fraction, stage: resumed_fractions.append(fraction),
                                                   CancelToken(), resume=state))

    assert [c.index for c in resumed] == [2, 3]
    for again, once in zip(resumed, straight[2:], strict=True):
        assert np.array_equal(again.frames, once.frames)
        assert again.state.keys() == once.state.keys()
    # One bar for the whole job: the resumed run goes on from where the saved chunk left it, and ends at 1.
    whole = at_save + resumed_fractions
    assert resumed_fractions[0] == at_save[-1] == 2 * PREVIEW_CHUNK_FRAMES / FRAMES
    assert whole == sorted(whole) and whole[-1] == 1.0
