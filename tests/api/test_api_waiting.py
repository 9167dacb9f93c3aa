"""Waiters on a task (`Prefer: wait`, SSE) share one watcher per task, woken by the task's changes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from api_servers import FileServer, Server, make_key, settings_for, wait_until
from sqlalchemy import event

from infinitetalk.api.waiting import task_events, wait_for_end
from infinitetalk.engines.instant import InstantEngine
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import TaskStatus

WAITERS = 100


def test_waiters_share_one_watcher_instead_of_polling_each(tmp_path: Path, file_server: FileServer) -> None:
    # no slow poll during the test: only this process's own changes can wake the waiters
    settings = settings_for(tmp_path, fetch_allow_hosts=["localhost"], watch_poll_s=600)
    runtime = Runtime(settings, engine=InstantEngine(frame_delay_s=0.02))
    runtime.start()
    statements: list[str] = []
    try:
        task, _ = runtime.service.submit(key=None, base_url="http://test", payload={
            "image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")})
        event.listen(runtime.db, "before_cursor_execute",
                     lambda _conn, _cursor, statement, *_args: statements.append(statement))

        async def stream() -> list[str]:
            return [chunk async for chunk in task_events(runtime, None, task.id)]

        async def everyone() -> list:
            half = WAITERS // 2
            return await asyncio.gather(*(wait_for_end(runtime, None, task.id, 120) for _ in range(half)),
                                        *(stream() for _ in range(WAITERS - half)))

        results = asyncio.run(everyone())
    finally:
        runtime.stop()
    waited, streamed = results[: WAITERS // 2], results[WAITERS // 2:]
    assert all(done.state is TaskStatus.SUCCEEDED for done in waited)
    for chunks in streamed:
        assert "event: done" in chunks[-1]
        assert sum("event: progress" in chunk for chunk in chunks) >= 2, "progress went out while it ran"
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "FROM tasks" in s]
    changes = [s for s in statements if s.lstrip().upper().startswith("UPDATE TASKS")]
    assert len(changes) >= 3
    # each waiter reads the task once (its key check); after that, reads follow changes, not waiters
    assert len(reads) <= WAITERS + 3 * len(changes) + 5, f"{len(reads)} reads for {len(changes)} changes"


def test_a_change_made_by_another_process_reaches_waiters(tmp_path: Path, file_server: FileServer) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = make_key(data_dir, "watcher", balance=1.0)
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.5",
           "INFINITETALK_WATCH_POLL_S": "0.5"}
    with Server(data_dir, env=env) as server:
        client = server.client(key["key"])
        task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")})
        wait_until(lambda: client.get(task["id"])["status"] == "running", timeout=60, what="the task to run")
        headers = {"Authorization": f"Bearer {key['key']}"}
        with httpx.stream("GET", f"{server.url}/v1/tasks/{task['id']}/events", headers=headers, timeout=60) as events:
            lines = events.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: progress"
            _fail_from_elsewhere(data_dir, task["id"])  # not through this server: no in-process wake
            kinds = [line for line in lines if line.startswith(("event:", "data:"))]
        assert kinds[-2] == "event: done"
        assert json.loads(kinds[-1].removeprefix("data:"))["status"] == "failed"


def _fail_from_elsewhere(data_dir: Path, task_id: str) -> None:
    from sqlalchemy import update

    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import Task

    db, sessions = open_database(settings_for(data_dir))
    try:
        with sessions.begin() as session:
            session.execute(update(Task).where(Task.id == task_id)
                            .values(status="failed", error_code="internal_error", error_message="stopped elsewhere"))
    finally:
        db.dispose()
