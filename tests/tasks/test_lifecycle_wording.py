"""What the task log says when a task goes back to the queue and runs again (issue 21): who stopped it, and how
long it waited measured from the right moment. Real store (SQLite), real lifecycle; log lines read with caplog."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from infinitetalk.engines.instant import InstantEngine
from infinitetalk.runtime.metrics import Metrics
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.models import Task, TaskStatus, utcnow

LOGGER = "infinitetalk.tasks"


@pytest.fixture(params=["sqlite", "postgresql"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """Both stores: the lines come from conditional UPDATEs, whose SET expressions must read the old row on each."""
    from api_servers import bind_store, settings_for

    if request.param == "postgresql":
        bind_store(tmp_path, request.getfixturevalue("postgres").create_database(f"wording_{uuid.uuid4().hex[:12]}"))
    settings = settings_for(tmp_path)
    runtime = Runtime(settings, engine=InstantEngine())  # not started: no worker takes the row
    try:
        yield runtime
    finally:
        runtime.stop()


def _running_task(runtime: Runtime, *, submitted_s_ago: float, attempts: int) -> str:
    now = utcnow()
    with runtime.sessions.begin() as session:
        session.add(Task(
            id="task_log", api_key_id=None, model="infinitetalk/image-to-video", status=TaskStatus.RUNNING.value,
            request={"image": "a.png", "audio": ["a.wav"]}, local_request={"image": "a.png", "audio": ["a.wav"]},
            request_hash="0" * 64, base_url="http://test", audio_seconds=1.5, billed_seconds=5, price_micros=0,
            charged=False, refunded=False, progress=0.4, attempts=attempts, cancel_requested=False,
            created_at=now - timedelta(seconds=submitted_s_ago), started_at=now, heartbeat_at=now))
    return "task_log"


def _worker_lifecycle(runtime: Runtime) -> TaskLifecycle:
    """The lifecycle as a fleet's worker process makes it (WorkerRuntime): with its worker id."""
    return TaskLifecycle(sessions=runtime.sessions, storage=runtime.storage, settings=runtime.settings,
                         metrics=Metrics(runtime.sessions), wake_sender=lambda: None, worker_id="wrk_host_1_abc")


def test_a_stopping_worker_says_it_is_the_worker(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    task_id = _running_task(runtime, submitted_s_ago=5, attempts=1)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _worker_lifecycle(runtime).requeue(task_id)
    assert f"task {task_id} queued again (worker stopping)" in caplog.messages


def test_a_stopping_server_says_it_is_the_server(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    task_id = _running_task(runtime, submitted_s_ago=5, attempts=1)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        runtime.lifecycle.requeue(task_id)  # the single server's in-process worker
    assert f"task {task_id} queued again (server stopping)" in caplog.messages


def test_a_second_run_does_not_call_the_time_since_submit_its_queue_wait(
        runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    task_id = _running_task(runtime, submitted_s_ago=131, attempts=1)
    runtime.lifecycle.requeue(task_id)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        runtime.lifecycle.start(task_id)  # claims it only: its files are the runtime's (runtime.task_files)
    running = next(m for m in caplog.messages if m.startswith(f"task {task_id} running"))
    assert "attempt 2" in running and "queued" not in running, running
    assert "submitted 131 s ago" in running, running
    with runtime.sessions() as session:
        assert session.get(Task, task_id).attempts == 2


def test_a_first_run_says_how_long_it_was_queued(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    task_id = _running_task(runtime, submitted_s_ago=2, attempts=0)
    with runtime.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task_id).values(status=TaskStatus.QUEUED.value))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        runtime.lifecycle.start(task_id)
    running = next(m for m in caplog.messages if m.startswith(f"task {task_id} running"))
    assert "attempt 1, queued 2." in running, running


def test_a_resumed_run_says_resuming_until_it_passes_where_the_last_one_stopped(runtime: Runtime) -> None:
    task_id = _running_task(runtime, submitted_s_ago=60, attempts=2)
    with runtime.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task_id).values(stage="starting"))

    def shown() -> tuple[float, str]:
        with runtime.sessions() as session:
            task = session.get(Task, task_id)
            return task.progress, task.stage

    runtime.lifecycle.heartbeat(task_id, 0.05, "finding faces")  # the new run's preparation, behind the old one
    assert shown() == (0.4, "resuming")
    runtime.lifecycle.heartbeat(task_id, 0.45, "chunk 13/33")
    assert shown() == (0.45, "chunk 13/33")
