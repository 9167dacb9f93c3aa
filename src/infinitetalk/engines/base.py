"""The Engine interface: what every engine takes and gives.

An engine turns an ``EngineJob`` (decoded, validated inputs at their final size and
timing: pictures, masks and boxes are already in output pixels) into RGB frames. It knows nothing of HTTP, tasks, storage or files: the caller
(``infinitetalk.render.render``) resolves media, encodes the frames and muxes audio.
Frames are yielded as they are made, so memory does not grow with video length and the
encoder can stream them to disk.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from infinitetalk.errors import Canceled, EngineError
from infinitetalk.schema import BBox, Mode

#: progress(fraction in [0, 1], stage name). Called often; must be cheap.
ProgressCallback = Callable[[float, str], None]

#: Sample rate of the speech tracks an engine receives.
AUDIO_SAMPLE_RATE = 16_000


def no_progress(fraction: float, stage: str) -> None:
    """A ProgressCallback that ignores progress."""


class CancelToken:
    """Set from any thread to ask a running engine to stop at its next frame/chunk/step boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def canceled(self) -> bool:
        return self._event.is_set()

    def raise_if_canceled(self) -> None:
        if self._event.is_set():
            raise Canceled("the task was canceled")


@dataclass(frozen=True)
class Speaker:
    """One person who speaks: their track on the output timeline, and how to find their face."""

    #: float32 mono at AUDIO_SAMPLE_RATE, exactly as long as the output video (silence padded).
    audio: np.ndarray
    #: uint8 at the output size, >0 where this speaker's face is, or None.
    mask: np.ndarray | None = None
    #: face box in output pixels, or None.
    bbox: BBox | None = None


@dataclass
class EngineJob:
    """Everything an engine needs, decoded and checked."""

    mode: Mode
    speakers: list[Speaker]
    width: int  # output size (a bucket); both even
    height: int
    fps: int
    num_frames: int
    seed: int
    #: RGB uint8, cover-cropped to height x width: the portrait (image-to-video) or the
    #: source video's first frame (video-to-video).
    image: np.ndarray | None = None
    #: Source frames for video-to-video: a callable that yields exactly ``num_frames`` RGB
    #: uint8 frames of height x width on the output timeline (rate-converted, extended).
    video_frames: Callable[[], Iterator[np.ndarray]] | None = None
    prompt: str | None = None
    extras: dict = field(default_factory=dict)


#: What an engine needs to go on after a chunk: named arrays only, so a checkpoint is saved and read back
#: without pickle (``np.savez`` / ``np.load(allow_pickle=False)``).
EngineState = dict[str, np.ndarray]


@dataclass(frozen=True)
class ChunkResult:
    """One finished chunk of a job: its new output frames and the state that resumes after it."""

    index: int  # 0-based
    count: int  # chunks in the whole job
    #: uint8 [n, height, width, 3]: this chunk's new output frames, in order; all chunks' frames joined are the video.
    frames: np.ndarray
    #: Handed back to ``generate_chunks(resume=...)``, it continues with chunk ``index + 1`` and makes exactly the
    #: frames an uninterrupted run makes.
    state: EngineState


@runtime_checkable
class Engine(Protocol):
    name: str

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        """Yield ``job.num_frames`` RGB uint8 frames of ``job.height x job.width x 3``."""
        ...


@runtime_checkable
class ResumableEngine(Engine, Protocol):
    """An engine that works in chunks and can start again after any finished one (long jobs survive a restart)."""

    def generate_chunks(
        self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken, resume: EngineState | None = None
    ) -> Iterator[ChunkResult]:
        """Yield the job's chunks in order, from the first, or from the one after the chunk ``resume`` came with.

        Progress fractions are over the whole job, so a resumed run starts where the interrupted one stopped.
        """
        ...


def chunk_after(state: EngineState, num_frames: int, count: int) -> int:
    """The chunk a run resumed from ``state`` starts with, checked against this job (``num_frames`` frames in
    ``count`` chunks): a checkpoint of another job is refused, never half-used."""
    if int(state["num_frames"]) != num_frames:
        raise EngineError(
            f"the checkpoint is of a {int(state['num_frames'])}-frame job, this one has {num_frames} frames: "
            "it belongs to another job; delete it to start this one over"
        )
    first = int(state["chunk"]) + 1
    if not 1 <= first <= count:
        raise EngineError(f"the checkpoint is after chunk {first} of {count}; delete it to start this job over")
    return first
