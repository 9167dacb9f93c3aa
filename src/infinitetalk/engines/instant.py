"""An engine that does no work: solid-colour frames. For API tests and load benchmarks, where the
engine's speed is not what is measured. ``INFINITETALK_INSTANT_FRAME_DELAY_S`` slows it down so a test
can catch a task while it runs (to cancel it, or to kill the server under it)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np

from infinitetalk.engines.base import CancelToken, EngineJob, ProgressCallback


class InstantEngine:
    name = "instant"

    def __init__(self, frame_delay_s: float | None = None) -> None:
        env = os.environ.get("INFINITETALK_INSTANT_FRAME_DELAY_S", "0")
        self.frame_delay_s = float(env) if frame_delay_s is None else frame_delay_s

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        frame = np.full((job.height, job.width, 3), (40, 90, 160), dtype=np.uint8)
        for index in range(job.num_frames):
            cancel.raise_if_canceled()
            if self.frame_delay_s:
                time.sleep(self.frame_delay_s)
            progress((index + 1) / job.num_frames, "generating")
            yield frame
