"""Run one task: claim it, render it with progress + cancel + heartbeats, report how it ended.

The runner knows nothing of the database: it talks to a ``JobEvents`` (the task service's lifecycle,
the one place that changes task status), so the same runner can sit behind a broker on another machine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from infinitetalk.config import Settings
from infinitetalk.engines.base import CancelToken, Engine
from infinitetalk.errors import Canceled, EngineError, InfiniteTalkError
from infinitetalk.schema import GenerationRequest
from infinitetalk.workers.render import RenderResult, render
from infinitetalk.workers.tokens import DeadlineToken, TaskTimeout

log = logging.getLogger(__name__)

#: Least time between two progress writes; each is also a heartbeat and a look at the cancel flag.
HEARTBEAT_S = 0.5


@dataclass(frozen=True)
class Job:
    task_id: str
    #: Media refs point at local files already fetched into the task's input folder.
    request: GenerationRequest
    output_path: Path


class JobEvents(Protocol):
    def start(self, task_id: str) -> Job | None:
        """Mark the task running; None when it must not run (canceled while queued, unknown)."""
        ...

    def heartbeat(self, task_id: str, fraction: float, stage: str) -> bool:
        """Record progress; True when someone asked the task to stop."""
        ...

    def succeeded(self, task_id: str, result: RenderResult) -> None: ...

    def failed(self, task_id: str, error: InfiniteTalkError) -> None: ...

    def canceled(self, task_id: str) -> None: ...

    def requeue(self, task_id: str) -> None:
        """Put a running task back in the queue (this process is stopping)."""
        ...


class _Progress:
    """A ProgressCallback that writes at most every HEARTBEAT_S (or on a new stage) and trips cancel."""

    def __init__(self, events: JobEvents, task_id: str, token: CancelToken) -> None:
        self._events, self._task_id, self._token = events, task_id, token
        self._last, self._stage = 0.0, ""

    def __call__(self, fraction: float, stage: str) -> None:
        now = time.monotonic()
        if stage == self._stage and now - self._last < HEARTBEAT_S and fraction < 1.0:
            return
        self._last, self._stage = now, stage
        if self._events.heartbeat(self._task_id, fraction, stage):
            self._token.cancel()


class TaskRunner:
    def __init__(self, *, engine: Engine, settings: Settings, events: JobEvents) -> None:
        self.engine, self.settings, self.events = engine, settings, events

    def new_token(self) -> CancelToken:
        return DeadlineToken(self.settings.task_timeout_s)

    def run(self, task_id: str, token: CancelToken) -> None:
        job = self.events.start(task_id)
        if job is None:
            return
        try:
            result = render(
                job.request, job.output_path, engine=self.engine, settings=self.settings,
                progress=_Progress(self.events, task_id, token), cancel=token, allow_local_paths=True,
            )
        except Canceled:
            if getattr(token, "stopping", False):
                self.events.requeue(task_id)
            elif getattr(token, "timed_out", False):
                self.events.failed(task_id, TaskTimeout(f"the task ran longer than {self.settings.task_timeout_s:g} s"))
            else:
                self.events.canceled(task_id)
        except InfiniteTalkError as exc:
            self.events.failed(task_id, exc)
        except Exception as exc:  # anything else is our bug: fail the task (refunded), keep the worker
            log.exception("task %s: render crashed", task_id)
            self.events.failed(task_id, EngineError(f"internal error while rendering: {exc}"))
        else:
            self.events.succeeded(task_id, result)
