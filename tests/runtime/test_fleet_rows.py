"""What a worker runs is read from the task it claimed (tasks.worker_id), not kept on its row as well: the row and
the task can no longer disagree. Real SQLite store, real registration, the claim through the lifecycle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from infinitetalk.config import Settings
from infinitetalk.runtime.fleet import WorkerRegistration, live_workers
from infinitetalk.runtime.metrics import Metrics
from infinitetalk.tasks.db import SessionFactory, open_database
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.models import Task, TaskStatus, WorkerRow, utcnow


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, SessionFactory]]:
    settings = Settings(data_dir=tmp_path)
    db, sessions = open_database(settings)
    try:
        yield settings, sessions
    finally:
        db.dispose()


def _queued(sessions: SessionFactory, task_id: str) -> None:
    now = utcnow()
    with sessions.begin() as session:
        session.add(Task(
            id=task_id, api_key_id=None, model="infinitetalk/image-to-video", status=TaskStatus.QUEUED.value,
            request={"image": "a.png", "audio": ["a.wav"]}, local_request={"image": "a.png", "audio": ["a.wav"]},
            request_hash="0" * 64, base_url="http://test", audio_seconds=1.5, billed_seconds=5, price_micros=0,
            charged=False, refunded=False, progress=0.0, attempts=0, cancel_requested=False, created_at=now))


def _shown(sessions: SessionFactory) -> dict[str, str | None]:
    with sessions() as session:
        return {worker.id: worker.task_id for worker in live_workers(session)}


def test_a_worker_shows_the_task_it_claimed_while_it_runs(store: tuple[Settings, SessionFactory]) -> None:
    settings, sessions = store
    mine = WorkerRegistration(sessions, gpu="0", engine="instant")
    other = WorkerRegistration(sessions, gpu="1", engine="instant")
    try:
        lifecycle = TaskLifecycle(sessions=sessions, storage=None, settings=settings,  # type: ignore[arg-type]
                                  metrics=Metrics(sessions), wake_sender=lambda: None, worker_id=mine.id)
        _queued(sessions, "task_a")
        assert _shown(sessions) == {mine.id: None, other.id: None}

        assert lifecycle.start("task_a") is not None
        assert _shown(sessions) == {mine.id: "task_a", other.id: None}
        assert lifecycle.start("task_a") is None  # a second message for it: nobody else shows it either
        assert _shown(sessions) == {mine.id: "task_a", other.id: None}

        lifecycle.requeue("task_a")  # back in the queue: its worker id stays on the row, but it runs nowhere
        assert _shown(sessions) == {mine.id: None, other.id: None}
    finally:
        mine.stop()
        other.stop()
    assert _shown(sessions) == {}


def test_a_worker_whose_heartbeat_lapsed_is_not_shown(store: tuple[Settings, SessionFactory]) -> None:
    _, sessions = store
    worker = WorkerRegistration(sessions, gpu=None, engine="instant")
    try:
        with sessions.begin() as session:
            session.execute(update(WorkerRow).values(heartbeat_at=utcnow().replace(year=2000)))
        assert _shown(sessions) == {}
    finally:
        worker.stop()
