"""Worker processes in the store: each keeps a row with its heartbeat, so `infinitetalk workers` and /metrics can
tell who is alive and busy, from any API process. What a worker runs is not kept twice: it is the running task whose
``worker_id`` is the worker's (the claim sets it)."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from infinitetalk.periodic import Periodic
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import Task, TaskStatus, WorkerRow, utcnow

log = logging.getLogger(__name__)

#: How often a worker renews its row; three missed beats and it no longer counts as alive. Constants, not
#: settings: every API process judges every worker's row by them (the three heartbeats: ``runtime.runner``).
WORKER_BEAT_S = 5.0
WORKER_ALIVE_WITHIN = timedelta(seconds=3 * WORKER_BEAT_S)


@dataclass(frozen=True)
class LiveWorker:
    id: str
    host: str
    pid: int
    gpu: str | None
    engine: str
    heartbeat_at: datetime
    #: the task it runs now, None when idle
    task_id: str | None


def live_workers(session: Session) -> list[LiveWorker]:
    cutoff = utcnow() - WORKER_ALIVE_WITHIN
    rows = session.execute(
        select(WorkerRow, Task.id)
        .outerjoin(Task, and_(Task.worker_id == WorkerRow.id, Task.status == TaskStatus.RUNNING.value))
        .where(WorkerRow.stopped_at.is_(None), WorkerRow.heartbeat_at >= cutoff)
        .order_by(WorkerRow.host, WorkerRow.gpu, WorkerRow.started_at)).all()
    found: dict[str, LiveWorker] = {}
    for row, task_id in rows:  # one task at a time; a second row would be one the reaper has not seen yet
        found.setdefault(row.id, LiveWorker(id=row.id, host=row.host, pid=row.pid, gpu=row.gpu, engine=row.engine,
                                            heartbeat_at=row.heartbeat_at, task_id=task_id))
    return list(found.values())


class WorkerRegistration:
    """This process's row: made at start, beaten every WORKER_BEAT_S on a thread, marked stopped at a clean exit."""

    def __init__(self, sessions: SessionFactory, *, gpu: str | None, engine: str) -> None:
        self.sessions = sessions
        self.id = f"wrk_{socket.gethostname()[:40]}_{os.getpid()}_{secrets.token_hex(3)}"
        with sessions.begin() as session:
            session.add(WorkerRow(id=self.id, host=socket.gethostname()[:200], pid=os.getpid(), gpu=gpu,
                                  engine=engine, started_at=utcnow(), heartbeat_at=utcnow()))
        self._beats = Periodic("worker-heartbeat", WORKER_BEAT_S, self._beat).start()

    def stop(self) -> None:
        self._beats.stop()
        with self.sessions.begin() as session:
            session.execute(update(WorkerRow).where(WorkerRow.id == self.id)
                            .values(stopped_at=utcnow()))

    def _beat(self) -> None:
        try:
            with self.sessions.begin() as session:
                session.execute(update(WorkerRow).where(WorkerRow.id == self.id)
                                .values(heartbeat_at=utcnow()))
        except SQLAlchemyError as exc:  # the next beat tries again; the task's own heartbeat is separate
            log.warning("worker heartbeat not recorded (%s)", exc.__class__.__name__)
