"""The read path behind status polls and lists (TaskService.get / list): the tasks it gives are the ones an ORM
Session would load (every column, detached, unchanged), under the same per-key visibility rule, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from api_servers import settings_for
from sqlalchemy import inspect, select

from infinitetalk.engines.instant import InstantEngine
from infinitetalk.errors import NotFound
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.keys import create_key
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus, utcnow
from infinitetalk.tasks.views import task_public


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(settings_for(tmp_path), engine=InstantEngine())  # not started: no worker takes these rows
    try:
        yield runtime
    finally:
        runtime.stop()


def _key(runtime: Runtime, name: str) -> ApiKey:
    with runtime.sessions.begin() as session:
        return create_key(session, name=name).record


def _task(runtime: Runtime, task_id: str, key: ApiKey | None, *, age_s: float = 0, **values: object) -> None:
    created = utcnow() - timedelta(seconds=age_s)
    row = {"id": task_id, "api_key_id": key.id if key else None, "model": "infinitetalk/image-to-video",
           "status": TaskStatus.QUEUED.value, "request": {"audio": ["data:audio/wav;base64,..."], "n": 1},
           "local_request": {"audio": ["a.wav"]}, "request_hash": "0" * 64, "base_url": "http://test",
           "audio_seconds": 1.5, "billed_seconds": 5, "price_micros": 150_000, "charged": key is not None,
           "refunded": False, "progress": 0.0, "attempts": 0, "cancel_requested": False, "created_at": created,
           **values}
    with runtime.sessions.begin() as session:
        session.add(Task(**row))


def test_a_polled_task_is_the_one_a_session_loads(runtime: Runtime) -> None:
    key = _key(runtime, "poller")
    finished = utcnow()
    _task(runtime, "task_done", key, age_s=30, status=TaskStatus.SUCCEEDED.value, progress=1.0, stage="encode",
          seed=42, attempts=1, worker_id="w1", started_at=finished - timedelta(seconds=20), finished_at=finished,
          heartbeat_at=finished, outputs={"video.mp4": {"content_type": "video/mp4", "bytes": 1234}},
          callback_url="http://hooks.test/done")
    polled = runtime.service.get(key=key, task_id="task_done")
    with runtime.sessions() as session:
        loaded = session.get(Task, "task_done")
    for column in inspect(Task).column_attrs:
        assert getattr(polled, column.key) == getattr(loaded, column.key), column.key
    state = inspect(polled)
    assert state.detached and not state.modified and state.key == inspect(loaded).key
    public = task_public(polled, storage=runtime.storage, settings=runtime.settings)
    assert public == task_public(loaded, storage=runtime.storage, settings=runtime.settings)
    assert public.outputs[0].url.startswith("http://test/") and public.timings.execution_ms == 20_000

    # detached, not new: a session that takes it back updates the row instead of inserting a second one
    with runtime.sessions.begin() as session:
        session.add(polled)
        polled.stage = "kept"
    with runtime.sessions() as session:
        assert [t.stage for t in session.scalars(select(Task).where(Task.id == "task_done"))] == ["kept"]


def test_only_the_owner_sees_a_task(runtime: Runtime) -> None:
    owner, other = _key(runtime, "owner"), _key(runtime, "other")
    _task(runtime, "task_owned", owner)
    _task(runtime, "task_open", None)
    assert runtime.service.get(key=owner, task_id="task_owned").id == "task_owned"
    assert runtime.service.get(key=None, task_id="task_open").id == "task_open"
    for key, task_id in ((other, "task_owned"), (None, "task_owned"), (owner, "task_open"), (owner, "task_none")):
        with pytest.raises(NotFound):
            runtime.service.get(key=key, task_id=task_id)
    assert [t.id for t in runtime.service.list(key=other)[0]] == []
    assert [t.id for t in runtime.service.list(key=None)[0]] == ["task_open"]


def test_a_list_pages_newest_first_with_its_filter(runtime: Runtime) -> None:
    key = _key(runtime, "lister")
    for age in range(5):
        status = TaskStatus.FAILED if age % 2 else TaskStatus.QUEUED
        _task(runtime, f"task_{age}", key, age_s=age, status=status.value, error_code="invalid_request",
              error_detail="caller", error_message="bad audio")
    seen, cursor = [], None
    while True:
        page, cursor = runtime.service.list(key=key, limit=2, cursor=cursor)
        assert all(inspect(task).detached and not inspect(task).modified for task in page)
        seen += [task.id for task in page]
        if cursor is None:
            break
    assert seen == [f"task_{age}" for age in range(5)]
    failed, _ = runtime.service.list(key=key, status=TaskStatus.FAILED)
    assert [task.id for task in failed] == ["task_1", "task_3"]
    assert failed[0].request == {"audio": ["data:audio/wav;base64,..."], "n": 1}

