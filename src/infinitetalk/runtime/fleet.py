"""Worker processes in the store: each keeps a row with its heartbeat and current task, so `infinitetalk
workers` and /metrics can tell who is alive and busy, from any API process."""

from __future__ import annotations

import logging
import os
import secrets
import socket
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from infinitetalk.periodic import Periodic
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import WorkerRow, utcnow

log = logging.getLogger(__name__)

#: How often a worker renews its row; three missed beats and it no longer counts as alive. Constants, not
#: settings: every API process judges every worker's row by them (the three heartbeats: ``runtime.runner``).
WORKER_BEAT_S = 5.0
WORKER_ALIVE_WITHIN = timedelta(seconds=3 * WORKER_BEAT_S)


def live_workers(session: Session) -> list[WorkerRow]:
    cutoff = utcnow() - WORKER_ALIVE_WITHIN
    return list(session.scalars(select(WorkerRow).where(WorkerRow.stopped_at.is_(None),
                                                        WorkerRow.heartbeat_at >= cutoff)
                                .order_by(WorkerRow.host, WorkerRow.gpu, WorkerRow.started_at)))


class WorkerRegistration:
    """This process's row: made at start, beaten every WORKER_BEAT_S on a thread, marked stopped at a clean exit."""

    def __init__(self, sessions: SessionFactory, *, gpu: str | None, engine: str) -> None:
        self.sessions = sessions
        self.id = f"wrk_{socket.gethostname()[:40]}_{os.getpid()}_{secrets.token_hex(3)}"
        self._task_id: str | None = None
        with sessions.begin() as session:
            session.add(WorkerRow(id=self.id, host=socket.gethostname()[:200], pid=os.getpid(), gpu=gpu,
                                  engine=engine, started_at=utcnow(), heartbeat_at=utcnow()))
        self._beats = Periodic("worker-heartbeat", WORKER_BEAT_S, self._beat).start()

    def working_on(self, task_id: str | None) -> None:
        self._task_id = task_id
        self._beat()

    def stop(self) -> None:
        self._beats.stop()
        with self.sessions.begin() as session:
            session.execute(update(WorkerRow).where(WorkerRow.id == self.id)
                            .values(stopped_at=utcnow(), task_id=None))

    def _beat(self) -> None:
        try:
            with self.sessions.begin() as session:
                session.execute(update(WorkerRow).where(WorkerRow.id == self.id)
                                .values(heartbeat_at=utcnow(), task_id=self._task_id))
        except SQLAlchemyError as exc:  # the next beat tries again; the task's own heartbeat is separate
            log.warning("worker heartbeat not recorded (%s)", exc.__class__.__name__)
