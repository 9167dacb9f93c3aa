"""On SQLite, status polls and lists never queue behind writers: while another process holds the write lock and
forty cancels wait on it (holding every connection of the writers' pool), polls answer at once, from a pool of
their own (WAL readers do not wait for a writer)."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_servers import Server, make_key, settings_for, wait_until

from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.models import Task, TaskStatus

pytestmark = pytest.mark.sqlite_only  # SQLite's write lock, taken from this process

WRITERS = 40


def _queued_tasks(data_dir: Path, key_id: str, count: int) -> list[str]:
    """Queued rows no worker will take (the server has dispatched what it found at start-up)."""
    db, sessions = open_database(settings_for(data_dir))
    ids = [f"task_readpool{n:04d}" for n in range(count)]
    try:
        with sessions.begin() as session:
            session.add_all(Task(
                id=task_id, api_key_id=key_id, model="infinitetalk/image-to-video", status=TaskStatus.QUEUED.value,
                request={}, local_request={}, request_hash="0" * 64, base_url="http://test", audio_seconds=1.0,
                billed_seconds=5, price_micros=0, charged=False, refunded=False, progress=0.0, attempts=0,
                cancel_requested=False) for task_id in ids)
    finally:
        db.dispose()
    return ids


def test_polls_do_not_wait_behind_queued_writers(tmp_path: Path) -> None:
    key = make_key(tmp_path, "poller", balance=1.0)
    headers = {"X-API-Key": key["key"]}
    # writers wait long on the lock, so a poll stuck behind them would answer only after they gave up
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_DATABASE_BUSY_TIMEOUT_S": "20"}
    with Server(tmp_path, env=env) as server:
        ids = _queued_tasks(tmp_path, key["id"], WRITERS)
        holder = sqlite3.connect(tmp_path / "infinitetalk.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # a stuck writer elsewhere
        try:
            with ThreadPoolExecutor(WRITERS) as pool, httpx.Client(base_url=server.url, headers=headers,
                                                                     timeout=60) as poller:
                cancels = [pool.submit(httpx.post, f"{server.url}/v1/tasks/{task_id}/cancel", headers=headers,
                                       timeout=60) for task_id in ids]
                wait_until(lambda: sum(f.running() for f in cancels) == WRITERS, timeout=30, what="writers sent")
                latencies = []
                for n in range(30):
                    started = time.perf_counter()
                    answer = poller.get(f"/v1/tasks/{ids[n]}" if n % 2 else "/v1/tasks")
                    latencies.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                print(f"poll latency behind {WRITERS} queued writers: max {max(latencies) * 1000:.1f} ms, "
                      f"median {sorted(latencies)[len(latencies) // 2] * 1000:.1f} ms")
                # every poll answered while all the writers still waited on the lock
                assert not any(f.done() for f in cancels), [f.result().status_code for f in cancels if f.done()]
                holder.execute("ROLLBACK")
                answers = [f.result() for f in cancels]
            assert [a.status_code for a in answers] == [202] * WRITERS, [a.text for a in answers if a.status_code != 202]
        finally:
            holder.close()
