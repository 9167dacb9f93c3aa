"""Run one task: claim it, render it with progress + cancel + heartbeats, report how it ended.

The runner knows nothing of the database: it talks to a ``RunEvents`` (the task service's lifecycle,
the one place that changes task status), so the same runner can sit behind a broker on another machine.
"""

from __future__ import annotations

import logging
import time

from infinitetalk.config import Settings
from infinitetalk.engines.base import CancelToken, Engine
from infinitetalk.errors import Canceled, EngineError, InfiniteTalkError, StorageFull, TaskTimeout
from infinitetalk.media.disk import is_disk_full
from infinitetalk.periodic import Periodic
from infinitetalk.render.render import RenderResult, join_finished, render
from infinitetalk.runtime.tokens import DeadlineToken, Ending
from infinitetalk.tasks.ports import Run, RunEvents

log = logging.getLogger(__name__)

# Three heartbeats, each with its own clock:
#
# - A task's, on its progress: each progress write renews the task's heartbeat and reads its cancel flag, at
#   most every PROGRESS_EVERY_S (a new stage writes at once). A constant: it only bounds the store's writes.
# - A task's, in silence: every ``settings.heartbeat_interval_s`` (INFINITETALK_HEARTBEAT_INTERVAL_S) while the
#   engine works, through stretches with no progress (a neural chunk). The reaper, in the API process, queues a
#   task again once its heartbeat is older than ``settings.stale_after_s``.
# - A worker process's row: every ``runtime.fleet.WORKER_BEAT_S``, for as long as the process lives, task or
#   not; a row older than ``fleet.WORKER_ALIVE_WITHIN`` is a dead worker to /metrics, /readyz and `infinitetalk
#   workers`. A constant, not the setting: those readers (any API process) judge every worker's row by one
#   rule, and cannot know what a worker elsewhere was configured with.

#: Least time between two progress writes of a task.
PROGRESS_EVERY_S = 0.5


class _Progress:
    """A ProgressCallback that writes at most every PROGRESS_EVERY_S (or on a new stage) and trips cancel."""

    def __init__(self, events: RunEvents, task_id: str, token: CancelToken) -> None:
        self._events, self._task_id, self._token = events, task_id, token
        self._last, self._stage, self._fraction = 0.0, "", 0.0

    def __call__(self, fraction: float, stage: str) -> None:
        now = time.monotonic()
        if stage == self._stage and now - self._last < PROGRESS_EVERY_S and fraction < 1.0:
            return
        self._last, self._stage, self._fraction = now, stage, fraction
        if self._events.heartbeat(self._task_id, fraction, stage):
            self._token.cancel()

    def beat(self) -> None:
        """The last progress again: renews the heartbeat and looks at the cancel flag."""
        if self._events.heartbeat(self._task_id, self._fraction, self._stage or "starting"):
            self._token.cancel()


def _beating(progress: _Progress, interval_s: float) -> Periodic:
    """Renews the task's heartbeat every ``interval_s`` while the engine works (``with``), even through long
    silent stretches (a neural chunk), so only a dead worker's task ever looks stale to the reaper."""
    return Periodic("task-heartbeat", interval_s, progress.beat)


class TaskRunner:
    def __init__(self, *, engine: Engine, settings: Settings, events: RunEvents) -> None:
        self.engine, self.settings, self.events = engine, settings, events

    def new_token(self) -> DeadlineToken:
        return DeadlineToken(self.settings.task_timeout_s)

    def run(self, task_id: str, token: DeadlineToken) -> None:
        claimed = self.events.start(task_id)
        if claimed is None:
            return
        progress = _Progress(self.events, task_id, token)
        try:
            with _beating(progress, self.settings.heartbeat_interval_s):
                result = render(claimed.request, claimed.output_path, engine=self.engine, settings=self.settings,
                                progress=progress, cancel=token, allow_local_paths=True, work=claimed.work,
                                on_chunk=lambda done: self.events.chunk_done(task_id, done))
        except Canceled:
            ended = token.ended
            if ended is Ending.STOPPING:
                self.events.requeue(task_id)
            elif ended is Ending.TIMED_OUT:
                self.events.failed(task_id, TaskTimeout(
                    f"the task ran longer than this server's {self.settings.task_timeout_s:g} s limit; you are not "
                    "charged for it. Send shorter speech or ask for a lower resolution"))
            else:
                self.events.canceled(task_id, self._finished_part(task_id, claimed))
        except InfiniteTalkError as exc:
            self.events.failed(task_id, exc if exc.caller_fault else _ours(task_id, exc))
        except Exception as exc:  # anything else is our bug: fail the task (refunded), keep the worker
            self.events.failed(task_id, _ours(task_id, exc))
        else:
            self.events.succeeded(task_id, result)

    def _finished_part(self, task_id: str, claimed: Run) -> RenderResult | None:
        """The chunks done before a cancel, as one MP4 the caller keeps (and pays for); None when there are
        none, or they cannot be joined (then the task is billed as if none were made: nothing to hand over)."""
        if claimed.work is None:
            return None
        try:
            return join_finished(claimed.work, claimed.output_path, engine=self.engine.name)
        except Exception as exc:  # the cancel itself must still be recorded
            log.error("task %s: the finished chunks could not be joined (%s)", task_id, exc.__class__.__name__,
                      exc_info=exc)
            return None


def _ours(task_id: str, exc: Exception) -> InfiniteTalkError:
    """What the caller is told about a failure of ours: what happened in their terms and what to do.

    The exception's own text (a file path, an SQL statement, a tensor name) is for the operator: it goes
    to the log with the task id, which the caller can quote.
    """
    if is_disk_full(exc):
        log.error("task %s: the disk is full while rendering", task_id, exc_info=exc)
        return StorageFull("the server ran out of room to store the video; you are not charged for it. Try again "
                           "in a few minutes")
    if isinstance(exc, StorageFull):
        return exc
    log.error("task %s: render failed (%s)", task_id, exc.__class__.__name__, exc_info=exc)
    code = exc.code if isinstance(exc, InfiniteTalkError) else EngineError.code
    return EngineError(f"the video could not be made because of an error on our side (logged with task {task_id}); "
                       "you are not charged for it. Try again, and if it fails again, report the task id", code=code)
