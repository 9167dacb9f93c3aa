"""Render one GenerationRequest into an MP4 file: the whole job, for the CLI and the task runner."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from infinitetalk.config import Settings, get_settings
from infinitetalk.engines.base import CancelToken, Engine, ProgressCallback, no_progress
from infinitetalk.errors import EngineError, InfiniteTalkError
from infinitetalk.media.video import Mp4Writer
from infinitetalk.schema import GenerationRequest
from infinitetalk.workers.inputs import SOUNDTRACK_RATE, prepare

log = logging.getLogger(__name__)

#: Share of the progress bar spent fetching and decoding inputs, and finishing the file.
_PREPARE, _FINISH = 0.02, 0.01


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


def render(
    request: GenerationRequest,
    output_path: str | Path,
    *,
    engine: Engine,
    settings: Settings | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    allow_local_paths: bool = True,
) -> RenderResult:
    """Fetch and check the inputs, run the engine, stream its frames into ``output_path``.

    ``allow_local_paths`` lets media refs name files on this machine: right for the CLI and
    for a runner that fetched the caller's inputs itself, wrong for raw refs from a caller.
    Nothing is written at ``output_path`` unless the whole video was made.
    """
    settings = settings or get_settings()
    cancel = cancel or CancelToken()
    started = time.perf_counter()
    output_path = Path(output_path)

    # 1. Inputs
    progress(0.0, "preparing")
    with tempfile.TemporaryDirectory(prefix="infinitetalk-inputs-") as workdir:
        prepared = prepare(request, Path(workdir), settings=settings, allow_local_paths=allow_local_paths)
    job = prepared.job
    cancel.raise_if_canceled()
    progress(_PREPARE, "preparing")

    # 2. Generate and encode, frame by frame
    def engine_progress(fraction: float, stage: str) -> None:
        progress(_PREPARE + (1 - _PREPARE - _FINISH) * min(max(fraction, 0.0), 1.0), stage)

    with Mp4Writer(
        output_path, width=job.width, height=job.height, fps=job.fps,
        audio=prepared.soundtrack, sample_rate=SOUNDTRACK_RATE,
    ) as writer:
        try:
            for frame in engine.generate(job, engine_progress, cancel):
                writer.write(frame)
                cancel.raise_if_canceled()
        except InfiniteTalkError:
            raise
        except Exception as exc:  # an engine bug must still leave a clean error and no file
            log.exception("engine %s failed", engine.name)
            raise EngineError(f"the {engine.name} engine failed: {exc}") from exc
        if writer.frames_written != job.num_frames:
            raise EngineError(
                f"the {engine.name} engine made {writer.frames_written} frames, expected {job.num_frames}"
            )
        progress(1.0 - _FINISH, "encoding")
    progress(1.0, "done")
    return RenderResult(
        path=output_path, seed=job.seed, duration_s=prepared.duration_s, num_frames=job.num_frames,
        width=job.width, height=job.height, fps=job.fps, engine=engine.name,
        elapsed_s=time.perf_counter() - started,
    )
