"""When the task store is held by another process, or a worker dies: a live /healthz, 503s that say
"try again" (no SQL), tasks that still reach a terminal state without a restart, billed once."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, ledger, make_key, wait_until

pytestmark = pytest.mark.slow
#: Longer than any busy timeout the server has ever had (30 s before this test was written).
HOLD_S = 35


def _body(file_server: FileServer) -> dict:
    return {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")}


@pytest.mark.sqlite_only  # it takes SQLite's write lock on the file
def test_store_held_by_another_process(tmp_path: Path, file_server: FileServer) -> None:
    key = make_key(tmp_path, "busy", balance=100.0)
    headers = {"X-API-Key": key["key"]}
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.05",
           "INFINITETALK_MAX_FETCHES_PER_KEY": "64"}  # sixty URL submits of one key at once
    with Server(tmp_path, env=env) as server:
        client = server.client(key["key"])
        task = client.submit(_body(file_server))
        wait_until(lambda: client.get(task["id"])["progress"]["fraction"] > 0.1, timeout=60, what="the task to run")

        holder = sqlite3.connect(tmp_path / "infinitetalk.db", timeout=1, isolation_level=None,
                                 check_same_thread=False)  # released from the timer's thread
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as a stuck writer elsewhere would hold it
        released = threading.Event()
        threading.Timer(HOLD_S, lambda: (holder.execute("ROLLBACK"), released.set())).start()
        try:
            with ThreadPoolExecutor(60) as pool:
                submits = [pool.submit(httpx.post, f"{server.url}/v1/tasks", json=_body(file_server),
                                       headers=headers, timeout=HOLD_S + 30) for _ in range(60)]
                # sixty writers wait on the lock; liveness does not
                wait_until(lambda: sum(f.running() for f in submits) >= 50, timeout=30, what="writers in flight")
                for _ in range(10):
                    assert httpx.get(f"{server.url}/healthz", timeout=3).status_code == 200
                answers = [future.result() for future in submits]
            assert not released.is_set(), "the store was released before the writers gave up"
            busy = [answer for answer in answers if answer.status_code == 503]
            assert busy, [answer.status_code for answer in answers]
            assert all(answer.status_code in (202, 503) for answer in answers)
            for answer in busy:
                assert int(answer.headers["Retry-After"]) >= 1
                error = answer.json()["error"]
                assert error["code"] == "service_busy"
                assert not any(word in error["message"].upper() for word in ("INSERT", "SELECT", "UPDATE", "SQL"))
        finally:
            released.wait(HOLD_S + 10)
        # the task that was running when the store froze still ends, without a restart, charged once
        done = client.wait(task["id"], timeout=120)
        assert done["status"] == "succeeded", done["error"]
    kinds = [kind for kind, _, task_id in ledger(tmp_path, key["id"])[1] if task_id == task["id"]]
    assert kinds == ["reserve"]


def _two_servers(tmp_path: Path, extra: dict[str, str]) -> tuple[Server, Server]:
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.05",
           "INFINITETALK_HEARTBEAT_INTERVAL_S": "0.3", "INFINITETALK_STALE_AFTER_S": "3",
           "INFINITETALK_REAP_INTERVAL_S": "0.5", **extra}
    return Server(tmp_path, env=env).start(), Server(tmp_path, env=env).start()


def _run_and_kill(tmp_path: Path, file_server: FileServer, key: dict, extra: dict[str, str]) -> tuple[dict, dict, str]:
    """Two servers on one store; the one that runs a task is killed mid-task; the other, with no restart,
    finds the stale heartbeat. Returns the task as submitted, as it ended, and the survivor's log."""
    dying, survivor = _two_servers(tmp_path, extra)
    try:
        task = dying.client(key["key"]).submit(_body(file_server))
        wait_until(lambda: dying.client(key["key"]).get(task["id"])["status"] == "running", timeout=60,
                   what="the task to run")
        dying.kill9()
        return task, survivor.client(key["key"]).wait(task["id"], timeout=120), survivor.log()
    finally:
        dying.stop()
        survivor.stop()


def test_a_dead_workers_task_runs_again_elsewhere(tmp_path: Path, file_server: FileServer) -> None:
    key = make_key(tmp_path, "reaped", balance=10.0)
    task, done, log = _run_and_kill(tmp_path, file_server, key, {})
    assert done["status"] == "succeeded", done["error"]
    assert "queued again (no heartbeat" in log
    kinds = [kind for kind, _, task_id in ledger(tmp_path, key["id"])[1] if task_id == task["id"]]
    assert kinds == ["reserve"]


def test_a_task_whose_worker_keeps_dying_fails_refunded(tmp_path: Path, file_server: FileServer) -> None:
    key = make_key(tmp_path, "lost", balance=10.0)
    _, done, _ = _run_and_kill(tmp_path, file_server, key, {"INFINITETALK_MAX_ATTEMPTS": "1"})
    assert done["status"] == "failed"
    assert done["error"]["code"] == "worker_lost"
    assert done["cost"]["refunded"] is True


def test_idempotency_key_holds_in_open_mode_under_concurrency(preview_server: Server,
                                                               file_server: FileServer) -> None:
    headers = {"Idempotency-Key": "same-request-twenty-times"}

    def send(_: int) -> httpx.Response:
        return httpx.post(f"{preview_server.url}/v1/tasks", json=_body(file_server), headers=headers, timeout=120)

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(send, range(20)))
    assert all(answer.status_code in (200, 202) for answer in answers), [a.text for a in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
