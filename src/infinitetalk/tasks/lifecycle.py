"""The one place that changes a task's status.

    queued -> running -> succeeded | failed | canceled
    queued -> canceled                (refunded: it never ran)
    running -> canceled               (pays for the video made, which the caller keeps; the rest comes back)
    running -> queued                 (the process stopped under it, or its heartbeat stopped: it runs again)
    running -> failed                 (its heartbeat stopped on every one of max_attempts runs: refunded)

Every change is one conditional UPDATE (``WHERE status IN (...)``), so two actors racing (a cancel and
a worker starting) cannot both win, and the money and the webhook ride in the same transaction.

Transitions, money and the outbox only: a task's files (inputs before a run, its video after, the checkpoint)
are the runtime's (``runtime.task_files``), told through ``finished`` when a task ends.

The bill follows the work: a failure of ours gives the whole price back; a cancel, or a failure through the
caller's input, pays for the whole seconds of video made (at least ``min_billed_seconds``, at most the price)
and gives the rest back, so one that made nothing is free (``billing.refund_due``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import timedelta
from functools import partial

from sqlalchemy import case, select, update
from sqlalchemy.exc import SQLAlchemyError

from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError, WorkerLost
from infinitetalk.render.render import ChunkProgress
from infinitetalk.schema import GenerationRequest
from infinitetalk.storage import Storage
from infinitetalk.tasks import billing, outbox
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import MICROS, Task, TaskStatus, utcnow
from infinitetalk.tasks.ports import TaskMetrics
from infinitetalk.tasks.views import fault_of, task_public

log = logging.getLogger("infinitetalk.tasks")

QUEUED, RUNNING = TaskStatus.QUEUED.value, TaskStatus.RUNNING.value


#: What comes back to the key when a task ends (see the module's docstring).
_NONE, _ALL, _UNMADE = "none", "all", "unmade"


def failure_code(error: InfiniteTalkError) -> str:
    """The code a task that ended with ``error`` shows: the snake_case code the same problem has as a
    request error (``no_face_detected``, ``image_unreadable``, ``timeout``, ``engine_error``), so a client
    reads one vocabulary. Provider routes turn it into their own documented codes (``api.compat``)."""
    return error.code[:40]


class TaskLifecycle:
    """Every change of a task's status: claim, progress, the endings, the caller's cancel, the reaper's requeue and
    start-up recovery."""

    def __init__(self, *, sessions: SessionFactory, storage: Storage, settings: Settings,
                 metrics: TaskMetrics, wake_sender: Callable[[], None],
                 on_change: Callable[[str], None] = lambda _task_id: None,
                 finished: Callable[[str], None] = lambda _task_id: None, worker_id: str | None = None) -> None:
        self.sessions, self.storage, self.settings = sessions, storage, settings
        self.metrics, self._wake_sender = metrics, wake_sender
        #: told the id of every task whose status or progress this process changed (after the commit)
        self._on_change = on_change
        #: told the id of every task that ended, after the commit: its files go (``runtime.task_files.finished``)
        self._finished = finished
        #: recorded on the tasks this process claims (a worker process of a fleet)
        self.worker_id = worker_id

    # --- start, progress ---
    def start(self, task_id: str) -> GenerationRequest | None:
        """Claim a queued task for this process: its request, or None when it must not run (canceled while
        queued, taken by another worker, unknown)."""
        now = utcnow()
        with self.sessions.begin() as session:
            changed = session.execute(
                update(Task).where(Task.id == task_id, Task.status == QUEUED, Task.cancel_requested.is_(False))
                .values(status=RUNNING, started_at=now, heartbeat_at=now, attempts=Task.attempts + 1,
                        worker_id=self.worker_id, stage="starting")
            ).rowcount
            if not changed:
                return None
            task = session.get(Task, task_id)
            request = GenerationRequest.model_validate(task.local_request)
            queue_delay = (now - task.created_at).total_seconds()
            attempt = task.attempts
        self._on_change(task_id)
        self.metrics.started(queue_delay)
        if attempt == 1:
            log.info("task %s running (attempt %d, queued %.3f s)", task_id, attempt, queue_delay)
        else:  # the row keeps no time of the requeue: say what the number is, not a queue wait it is not
            log.info("task %s running (attempt %d, submitted %.0f s ago)", task_id, attempt, queue_delay)
        return request

    def heartbeat(self, task_id: str, fraction: float, stage: str) -> bool:
        try:
            with self.sessions.begin() as session:
                session.execute(
                    update(Task).where(Task.id == task_id, Task.status == RUNNING)
                    # never backwards: a resumed run reports from where the interrupted one stopped, and says
                    # "resuming" (not its preparation's stages) until it gets past there
                    .values(progress=case((Task.progress > float(fraction), Task.progress), else_=float(fraction)),
                            stage=case((Task.progress > float(fraction), "resuming"), else_=stage[:40]),
                            heartbeat_at=utcnow())
                )
                cancel = bool(session.scalar(select(Task.cancel_requested).where(Task.id == task_id)))
        except SQLAlchemyError as exc:
            # a missed beat costs nothing (the next one renews the lease); failing the render for it would
            log.warning("task %s: heartbeat not recorded (%s); the render goes on", task_id, exc.__class__.__name__)
            return False
        self._on_change(task_id)
        return cancel

    def chunk_done(self, task_id: str, done: ChunkProgress) -> None:
        """A chunk is finished and its preview segment stored: show where the render is."""
        chunks = {"done": done.chunks_done, "count": done.chunks, "frames_done": done.frames_done,
                  "frames": done.frames, "fps": done.fps, "eta_s": done.eta_s, "at": utcnow().isoformat(),
                  "segments": [[s.name, round(s.duration_s, 3)] for s in done.segments]}
        try:
            with self.sessions.begin() as session:
                session.execute(update(Task).where(Task.id == task_id, Task.status == RUNNING)
                                .values(chunks=chunks, heartbeat_at=utcnow()))
        except SQLAlchemyError as exc:  # the next chunk writes the whole list again
            log.warning("task %s: chunk %d not recorded (%s)", task_id, done.chunks_done, exc.__class__.__name__)
            return
        self._on_change(task_id)

    # --- endings ---
    def succeeded(self, task_id: str, *, seed: int | None, outputs: dict) -> None:
        """The video is made and stored (``outputs``: its name -> what the view shows of it)."""
        self._finish(task_id, TaskStatus.SUCCEEDED, from_=(RUNNING,), refund=_NONE, retry=True,
                     values={"seed": seed, "outputs": outputs, "progress": 1.0, "stage": "done"})

    def failed(self, task_id: str, error: InfiniteTalkError) -> None:
        """Our failure: the whole price back. The caller's (its input): it pays for the video made before the
        failure, so one found before the first chunk (the render could not use the input) is free."""
        self._finish(task_id, TaskStatus.FAILED, from_=(RUNNING, QUEUED),
                     refund=_UNMADE if error.caller_fault else _ALL, retry=True,
                     values={"error_code": failure_code(error), "error_detail": fault_of(error),
                             "error_message": error.message})

    def canceled(self, task_id: str, *, outputs: dict | None = None, made_s: float = 0.0) -> None:
        """Stopped while it ran, on the caller's word: it pays for the ``made_s`` seconds of video made, which it
        keeps (``outputs``, stored by then); the rest of the price comes back. Nothing made or nothing that could be
        handed over: nothing to pay."""
        self._finish(task_id, TaskStatus.CANCELED, from_=(RUNNING,), refund=_UNMADE, retry=True,
                     values={"outputs": outputs} if outputs else {}, made_s=made_s if outputs else 0.0)

    def cancel_queued(self, task_id: str) -> bool:
        """Cancel a task that has not started; it never runs and its price comes back."""
        return self._finish(task_id, TaskStatus.CANCELED, from_=(QUEUED,), refund=_ALL, values={})

    def requeue(self, task_id: str) -> None:
        """The process is stopping under a running task: put it back so the next start runs it."""
        with self.sessions.begin() as session:
            session.execute(update(Task).where(Task.id == task_id, Task.status == RUNNING)
                            .values(status=QUEUED, stage=None))
        self._on_change(task_id)
        log.info("task %s queued again (%s stopping)", task_id, "worker" if self.worker_id else "server")

    def recover(self) -> list[str]:
        """At start-up: tasks left running by a dead process go back to the queue; return all queued ids."""
        with self.sessions.begin() as session:
            orphans = list(session.scalars(select(Task.id).where(Task.status == RUNNING)))
            session.execute(update(Task).where(Task.status == RUNNING)
                            .values(status=QUEUED, stage=None))
            queued = list(session.scalars(select(Task.id).where(Task.status == QUEUED).order_by(Task.created_at)))
        for task_id in orphans:
            log.info("task %s queued again (it was running when the server stopped)", task_id)
        return queued

    def reap_stale(self, *, alive: Collection[str] = ()) -> list[str]:
        """Running tasks whose heartbeat stopped (their worker died, or could not record the end): queued
        again, or failed and refunded once they have had ``max_attempts`` runs. Returns the requeued ids.
        ``alive``: tasks this process is running right now (a stale beat there is a store problem)."""
        cutoff = utcnow() - timedelta(seconds=self.settings.stale_after_s)
        with self.sessions() as session:
            stale = session.execute(select(Task.id, Task.attempts)
                                    .where(Task.status == RUNNING, Task.heartbeat_at < cutoff)).all()
        requeued = []
        for task_id, attempts in stale:
            if task_id in alive:
                continue
            if attempts >= self.settings.max_attempts:
                self.failed(task_id, WorkerLost(
                    f"the task's worker stopped responding on each of its {attempts} runs; you are not charged "
                    f"for it. Try again, and if it fails again, report task {task_id}"))
                continue
            with self.sessions.begin() as session:
                changed = session.execute(
                    update(Task).where(Task.id == task_id, Task.status == RUNNING, Task.heartbeat_at < cutoff)
                    .values(status=QUEUED, stage=None)).rowcount
            if changed:
                requeued.append(task_id)
                self._on_change(task_id)
                log.warning("task %s queued again (no heartbeat for %g s; attempt %d)", task_id,
                            self.settings.stale_after_s, attempts)
        return requeued

    def waiting_since(self, seconds: float) -> list[str]:
        """Queued tasks submitted more than ``seconds`` ago, oldest first."""
        cutoff = utcnow() - timedelta(seconds=seconds)
        with self.sessions() as session:
            return list(session.scalars(select(Task.id).where(Task.status == QUEUED, Task.created_at < cutoff)
                                        .order_by(Task.created_at)))

    def _finish(self, task_id: str, status: TaskStatus, *, from_: tuple[str, ...], refund: str,
                values: dict, retry: bool = False, made_s: float | None = None) -> bool:
        """One conditional UPDATE with the money and the webhook. ``refund``: _NONE, _ALL, or _UNMADE (the price
        of the video not made: ``made_s`` seconds of it were, or as the task's finished chunks say). ``retry``:
        a worker recording how its task ended keeps trying (a locked store, a full disk) for terminal_retry_s,
        so a task is never left running for want of one write; a caller's request (cancel) gets its 503 at
        once instead."""
        write = partial(self._finish_once, task_id, status, from_=from_, refund=refund, values=values,
                        made_s=made_s)
        if not retry:
            return write()
        deadline, delay = time.monotonic() + self.settings.terminal_retry_s, 0.25
        while True:
            try:
                return write()
            except (SQLAlchemyError, OSError) as exc:
                if time.monotonic() + delay > deadline:
                    log.error("task %s: could not record it %s for %g s; the reaper will find it", task_id,
                              status.value, self.settings.terminal_retry_s)
                    raise
                log.warning("task %s: recording it %s failed (%s); trying again in %.2g s", task_id, status.value,
                            exc.__class__.__name__, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def _finish_once(self, task_id: str, status: TaskStatus, *, from_: tuple[str, ...], refund: str,
                     values: dict, made_s: float | None) -> bool:
        with self.sessions.begin() as session:
            changed = session.execute(
                update(Task).where(Task.id == task_id, Task.status.in_(from_))
                .values(status=status.value, finished_at=utcnow(), **values)
            ).rowcount
            if not changed:
                return False
            task = session.get(Task, task_id)
            session.refresh(task)
            amount = self._refund_amount(task, refund, made_s) if task.charged and task.api_key_id else 0
            if amount and not task.refunded:
                billing.refund(session, key_id=task.api_key_id, amount_micros=amount, task_id=task_id)
                task.refunded, task.refund_micros = True, amount
            if task.callback_url:
                view = task_public(task, storage=self.storage, settings=self.settings)
                outbox.enqueue(session, task=task, event_type=f"task.{status.value}",
                               data=view.model_dump(mode="json"))
            elapsed = (task.finished_at - task.started_at).total_seconds() if task.started_at else None
            code = task.error_code
        self._finished(task_id)
        self.metrics.finished(status.value, code, elapsed)
        log.info("task %s %s%s%s", task_id, status.value, f" ({code}: {values.get('error_message')})" if code else "",
                 f" refunded ${amount / MICROS:.4f}" if amount else "")
        self._wake_sender()
        self._on_change(task_id)
        return True

    def _refund_amount(self, task: Task, refund: str, made_s: float | None) -> int:
        if refund == _NONE:
            return 0
        if refund == _ALL:
            return task.price_micros
        made = made_s if made_s is not None else video_seconds_done(task)
        return billing.refund_due(price_micros=task.price_micros, billed_seconds=task.billed_seconds,
                                  video_seconds=made, min_billed_seconds=self.settings.min_billed_seconds,
                                  our_fault=False)


def video_seconds_done(task: Task) -> float:
    """Seconds of video in the task's finished chunks, as its last recorded chunk says (0 before the first)."""
    chunks = task.chunks or {}
    if not chunks.get("fps"):
        return 0.0
    return chunks.get("frames_done", 0) / chunks["fps"]
