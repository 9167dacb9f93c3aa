"""Render one GenerationRequest into an MP4 file: the whole job, for the CLI and the task runner.

The engine works in chunks. Each finished chunk becomes an HLS segment (H.264 + the soundtrack's AAC packets for
its time) in a work folder, with a checkpoint that lets a later run go on after it (``checkpoint.py``); the
segments are a live preview while the job runs, and the final MP4 is joined from them without re-encoding. A
run that finds a checkpoint of the same job resumes after its last chunk and makes the same video an
uninterrupted run makes.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import av
import numpy as np

from infinitetalk.config import Settings, get_settings
from infinitetalk.engines.base import (
    CancelToken,
    ChunkResult,
    Engine,
    EngineJob,
    EngineState,
    ProgressCallback,
    ResumableEngine,
    no_progress,
)
from infinitetalk.errors import EngineError, InfiniteTalkError, InvalidRequest
from infinitetalk.media.segments import AacTrack, join_segments, write_segment
from infinitetalk.render.checkpoint import Checkpoint, Segment, WorkFolder, fingerprint, segment_name
from infinitetalk.render.inputs import SOUNDTRACK_RATE, PreparedJob, prepare
from infinitetalk.schema import GenerationRequest
from infinitetalk.storage.retention import render_scratch_prefix

log = logging.getLogger(__name__)

#: Share of the progress bar spent fetching and decoding inputs, and joining the file.
_PREPARE, _FINISH = 0.02, 0.01
#: Frames per chunk for an engine that does not chunk its own work (and so cannot resume either).
_PLAIN_CHUNK = 72


@dataclass(frozen=True)
class RenderResult:
    path: Path
    seed: int
    duration_s: float
    num_frames: int
    width: int
    height: int
    fps: int
    engine: str
    elapsed_s: float
    #: chunks the run started after (0: from the beginning); for a partial video, the chunks it holds
    resumed_chunks: int = 0
    #: the video stops where the render was stopped (``join_finished``), before the end of the speech
    partial: bool = False


@dataclass(frozen=True)
class ChunkProgress:
    """Where a chunked render is, after each finished chunk (for progress a person can read and the preview)."""

    chunks_done: int
    chunks: int
    frames_done: int
    frames: int
    fps: int
    #: seconds left at the rate this run has measured so far; None until it has measured one
    eta_s: float | None
    segments: list[Segment]

    @property
    def video_s_done(self) -> float:
        return self.frames_done / self.fps


class _Monotonic:
    """Progress that never goes back: a resumed run starts at the fraction where the interrupted one stopped."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress, self.fraction = progress, 0.0

    def __call__(self, fraction: float, stage: str) -> None:
        self.fraction = max(self.fraction, min(max(fraction, 0.0), 1.0))
        self._progress(self.fraction, stage)


def render(
    request: GenerationRequest,
    output_path: str | Path,
    *,
    engine: Engine,
    settings: Settings | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    allow_local_paths: bool = True,
    work: WorkFolder | None = None,
    strict_resume: bool = False,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
) -> RenderResult:
    """Fetch and check the inputs, run the engine chunk by chunk, join the segments into ``output_path``.

    ``allow_local_paths`` lets media refs name files on this machine: right for the CLI and for a runner that
    fetched the caller's inputs itself, wrong for raw refs from a caller. ``work``: the folder of segments and
    checkpoint that outlives this run (a temporary one when None: nothing to resume). A checkpoint there of
    another job is discarded, or, with ``strict_resume``, refused. Nothing is written at ``output_path``
    unless the whole video was made.
    """
    settings = settings or get_settings()
    cancel = cancel or CancelToken()
    started = time.perf_counter()
    output_path = Path(output_path)
    progress = _Monotonic(progress)
    with tempfile.TemporaryDirectory(prefix=render_scratch_prefix()) as scratch:  # pid in it: see retention
        work = work or WorkFolder(Path(scratch) / "work")

        # 1. Inputs, with the seed of the run this one resumes
        progress(0.0, "preparing")
        saved = work.load()
        if saved is not None:
            request = request.model_copy(update={"seed": saved[0].seed})
        with tempfile.TemporaryDirectory(prefix="infinitetalk-inputs-", dir=scratch) as workdir:
            prepared = prepare(request, Path(workdir), settings=settings, allow_local_paths=allow_local_paths)
        job = prepared.job
        cancel.raise_if_canceled()
        checkpoint, state = _resume_point(work, saved, _fingerprint(request, engine, prepared), job, engine,
                                          strict_resume)
        if state is not None:
            log.info("resuming after chunk %d of %d", len(checkpoint.segments), checkpoint.chunks)
        progress(_PREPARE + (1 - _PREPARE - _FINISH) * checkpoint.frames_done / job.num_frames, "preparing")

        # 2. Generate chunk by chunk; each chunk's segment is encoded on a thread while the engine makes the next
        def engine_progress(fraction: float, stage: str) -> None:
            progress(_PREPARE + (1 - _PREPARE - _FINISH) * fraction, stage)

        resumed = len(checkpoint.segments)
        rate = _Rate(checkpoint.frames_done, job.num_frames)
        with ThreadPoolExecutor(1, thread_name_prefix="segment-encoder") as encoder:
            # the whole soundtrack, once (segments cut its packets), while the engine makes the first chunk
            audio = encoder.submit(AacTrack.encode, prepared.soundtrack, SOUNDTRACK_RATE)
            pending: Future[None] | None = None
            try:
                # closed at once when this loop stops early: an engine shared by several ranks tells them to stop
                with closing(_chunks(engine, job, engine_progress, cancel, state)) as chunks:
                    for chunk in chunks:
                        cancel.raise_if_canceled()
                        if pending is not None:
                            pending.result()
                        pending = encoder.submit(_finish_chunk, work, checkpoint, chunk, job, audio, rate, on_chunk)
                if pending is not None:
                    pending.result()
            except InfiniteTalkError:
                raise
            except Exception as exc:  # an engine bug must still leave a clean error and no file
                log.exception("engine %s failed", engine.name)
                raise EngineError(f"the {engine.name} engine failed: {exc}") from exc
            finally:
                if pending is not None and not pending.done():
                    pending.cancel()
        if checkpoint.frames_done != job.num_frames:
            raise EngineError(
                f"the {engine.name} engine made {checkpoint.frames_done} frames, expected {job.num_frames}"
            )

        # 3. One MP4 from the segments, without re-encoding
        progress(1.0 - _FINISH, "joining")
        join_segments([work.local(s.name) for s in checkpoint.segments], output_path)
        work.clear_checkpoint()
    progress(1.0, "done")
    return RenderResult(
        path=output_path, seed=job.seed, duration_s=prepared.duration_s, num_frames=job.num_frames,
        width=job.width, height=job.height, fps=job.fps, engine=engine.name,
        elapsed_s=time.perf_counter() - started, resumed_chunks=resumed,
    )


def join_finished(work: WorkFolder, output_path: str | Path, *, engine: str) -> RenderResult | None:
    """The chunks a stopped render finished, joined into one MP4 at ``output_path`` (H.264 + AAC, no re-encoding;
    each segment carries the sound of its own frames, so the sound ends with the picture): what a caller who
    canceled a running task keeps. None when no chunk was finished (or its checkpoint cannot be read)."""
    saved = work.load()
    if saved is None or not saved[0].segments:
        return None
    checkpoint = saved[0]
    started = time.perf_counter()
    output_path = Path(output_path)
    join_segments([work.local(s.name) for s in checkpoint.segments], output_path)
    with av.open(str(output_path)) as joined:
        width, height = joined.streams.video[0].width, joined.streams.video[0].height
    return RenderResult(
        path=output_path, seed=checkpoint.seed, duration_s=checkpoint.frames_done / checkpoint.fps,
        num_frames=checkpoint.frames_done, width=width, height=height, fps=checkpoint.fps, engine=engine,
        elapsed_s=time.perf_counter() - started, resumed_chunks=len(checkpoint.segments), partial=True,
    )


def _fingerprint(request: GenerationRequest, engine: Engine, prepared: PreparedJob) -> str:
    """The job's identity: its decoded inputs and settings, not where its files were (another machine's
    folder) nor its seed (the checkpoint keeps that)."""
    job = prepared.job
    params = request.model_dump(mode="json", exclude={"image", "video", "audio", "mask", "seed"})
    masks = [s.mask for s in job.speakers if s.mask is not None]
    return fingerprint(engine.name, params, job.width, job.height, job.fps, job.num_frames, prepared.soundtrack,
                       job.image if job.image is not None else "", *masks)


def _resume_point(work: WorkFolder, saved: tuple[Checkpoint, EngineState] | None, print_: str, job: EngineJob,
                  engine: Engine, strict: bool) -> tuple[Checkpoint, EngineState | None]:
    """The checkpoint to go on from and the engine state after it, or a fresh one (state None)."""
    if saved is not None:
        checkpoint, state = saved
        if checkpoint.fingerprint != print_:
            if strict:
                raise InvalidRequest("the interrupted run in the work folder was for other inputs or settings; run "
                                     "again without --resume to start over", code="resume_mismatch")
            log.warning("a checkpoint of another job was in the work folder; starting over")
        elif not isinstance(engine, ResumableEngine):
            log.warning("the %s engine cannot resume; starting over", engine.name)
        elif checkpoint.segments:
            return checkpoint, state
        work.clear()
    return Checkpoint(fingerprint=print_, seed=job.seed, chunks=0, fps=job.fps, num_frames=job.num_frames), None


def _chunks(engine: Engine, job: EngineJob, progress: ProgressCallback, cancel: CancelToken,
            state: EngineState | None) -> Iterator[ChunkResult]:
    if isinstance(engine, ResumableEngine):
        yield from engine.generate_chunks(job, progress, cancel, resume=state)
        return
    frames = engine.generate(job, progress, cancel)
    count = -(-job.num_frames // _PLAIN_CHUNK)
    for index in range(count):
        batch = list(islice(frames, _PLAIN_CHUNK))
        if not batch:
            return
        yield ChunkResult(index=index, count=count, frames=np.stack(batch), state={})


class _Rate:
    """Frames per second of this run, for an ETA that a resume does not skew."""

    def __init__(self, frames_before: int, frames: int) -> None:
        self._start, self._before, self._frames = time.monotonic(), frames_before, frames

    def eta(self, frames_done: int) -> float | None:
        made, spent = frames_done - self._before, time.monotonic() - self._start
        if made <= 0 or spent <= 0:
            return None
        return round((self._frames - frames_done) * spent / made, 1)


def _finish_chunk(work: WorkFolder, checkpoint: Checkpoint, chunk: ChunkResult, job: EngineJob,
                  audio: Future[AacTrack], rate: _Rate, on_chunk: Callable[[ChunkProgress], None] | None) -> None:
    """Encode a chunk's segment, then record it in the checkpoint (in that order: see ``checkpoint.py``)."""
    start = checkpoint.frames_done
    name = segment_name(len(checkpoint.segments))
    work.folder.mkdir(parents=True, exist_ok=True)  # only now: a job that fails before its first chunk leaves none
    info = write_segment(work.path(name), chunk.frames, start_frame=start, fps=job.fps, audio=audio.result(),
                         last=chunk.index == chunk.count - 1)
    checkpoint.chunks = chunk.count
    work.save(checkpoint, Segment(name=name, start_frame=start, frames=len(chunk.frames),
                                  duration_s=info.duration_s), chunk.state)
    if on_chunk is not None:
        done = checkpoint.frames_done
        on_chunk(ChunkProgress(chunks_done=len(checkpoint.segments), chunks=chunk.count, frames_done=done,
                               frames=job.num_frames, fps=job.fps, eta_s=rate.eta(done),
                               segments=list(checkpoint.segments)))
