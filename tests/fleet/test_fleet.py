"""Two API processes, three worker processes, one Redis, one store: tasks from several keys run on whichever
worker is free, billed once; a killed worker's task runs again elsewhere; a killed API process loses
nothing; Redis restarts lose nothing; cancel reaches a task on any worker."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_servers import FileServer, Server, WebhookReceiver, ledger, make_key, wait_until
from fleet_procs import Redis, Workers, fleet_env, start_api

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, redis_server: Redis) -> Iterator[tuple[Path, list[Server], Workers]]:
    data_dir = tmp_path_factory.mktemp("fleet-data")
    make_key(data_dir, "bootstrap", balance=0)  # the store exists, migrated, before three kinds of process open it
    env = fleet_env(redis_server)
    apis = [start_api(data_dir, env), start_api(data_dir, env)]
    workers = Workers(data_dir, {**os.environ, **env}, "0,1,2").start(expect=3)
    try:
        yield data_dir, apis, workers
    finally:
        workers.stop()
        for api in apis:
            api.stop()


def _body(file_server: FileServer, audio: str = "short.wav", **extra: object) -> dict:
    return {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url(audio), **extra}


def test_twelve_tasks_from_three_keys_through_two_apis(fleet: tuple, file_server: FileServer,
                                                       tmp_path: Path) -> None:
    from media_checks import assert_playable_video

    data_dir, apis, workers = fleet
    keys = [make_key(data_dir, f"fleet-{n}", balance=10.0) for n in range(3)]
    submitted = []
    for n in range(12):
        key, api = keys[n % 3], apis[n % 2]
        submitted.append((key, api.client(key["key"]).submit(_body(file_server))))
    for key, task in submitted:
        done = apis[0].client(key["key"]).wait(task["id"], timeout=300)
        assert done["status"] == "succeeded", done["error"]
        assert_playable_video(done["outputs"][0]["url"], tmp_path)
    for key in keys:
        tasks = [task for owner, task in submitted if owner is key]
        balance, rows = ledger(data_dir, key["id"])
        assert sorted(task_id for kind, _, task_id in rows if kind == "reserve") == sorted(t["id"] for t in tasks)
        assert not [row for row in rows if row[0] == "refund"]
        assert balance == pytest.approx(10.0 - sum(task["cost"]["price"] for task in tasks))


def test_a_killed_worker_s_task_finishes_on_another_billed_once(fleet: tuple, file_server: FileServer,
                                                                webhook_receiver: WebhookReceiver) -> None:
    data_dir, apis, workers = fleet
    key = make_key(data_dir, "kill-worker", balance=10.0)
    client = apis[0].client(key["key"])
    task = client.submit(_body(file_server, "long.wav", callback_url=webhook_receiver.url))
    holder = workers.holding(task["id"])
    os.kill(holder["pid"], signal.SIGKILL)
    done = client.wait(task["id"], timeout=300)
    assert done["status"] == "succeeded", done["error"]
    from infinitetalk.config import Settings
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import Task

    db, sessions = open_database(Settings(data_dir=data_dir))
    with sessions() as session:
        row = session.get(Task, task["id"])
        assert row.attempts == 2 and row.worker_id != holder["id"]
    db.dispose()
    wait_until(lambda: webhook_receiver.received, timeout=60, what="the webhook")
    ids = {received.headers["webhook-id"] for received in webhook_receiver.received}
    assert len(ids) == 1
    kinds = [kind for kind, _, task_id in ledger(data_dir, key["id"])[1] if task_id == task["id"]]
    assert kinds == ["reserve"]
    assert holder["id"] not in {worker["id"] for worker in workers.live()}


def test_cancel_reaches_a_task_on_a_worker(fleet: tuple, file_server: FileServer) -> None:
    data_dir, apis, workers = fleet
    key = make_key(data_dir, "cancel", balance=10.0)
    client = apis[1].client(key["key"])
    task = client.submit(_body(file_server, "long.wav"))
    workers.holding(task["id"])
    client.cancel(task["id"])
    # the worker sees the flag at its next progress write (every frame or so), well inside this bound
    done = wait_until(lambda: (t := client.get(task["id"]))["status"] in ("canceled", "succeeded") and t,
                      timeout=10, what="the task to stop")
    assert done["status"] == "canceled"


def test_sigterm_puts_the_task_back_for_another_worker(fleet: tuple, file_server: FileServer) -> None:
    data_dir, apis, workers = fleet
    key = make_key(data_dir, "sigterm", balance=10.0)
    client = apis[0].client(key["key"])
    task = client.submit(_body(file_server, "long.wav"))
    holder = workers.holding(task["id"])
    before = len(workers.live())
    os.kill(holder["pid"], signal.SIGTERM)
    done = client.wait(task["id"], timeout=300)
    assert done["status"] == "succeeded", done["error"]
    assert holder["id"] not in {worker["id"] for worker in workers.live()}  # it exited, and said so
    assert len(workers.live()) == before - 1
    kinds = [kind for kind, _, task_id in ledger(data_dir, key["id"])[1] if task_id == task["id"]]
    assert kinds == ["reserve"]

def test_metrics_count_the_fleet(fleet: tuple) -> None:
    import httpx

    _, apis, workers = fleet
    text = httpx.get(f"{apis[0].url}/metrics").text
    alive = next(line for line in text.splitlines() if line.startswith("infinitetalk_workers_alive "))
    assert float(alive.split()[1]) == len(workers.live())
    assert "infinitetalk_broker_queue_depth " in text and "infinitetalk_queue_wait_seconds " in text

def test_redis_restart_and_a_killed_api_lose_nothing(fleet: tuple, file_server: FileServer,
                                                     redis_server: Redis) -> None:
    data_dir, apis, workers = fleet
    key = make_key(data_dir, "survivors", balance=10.0)
    tasks = [apis[n % 2].client(key["key"]).submit(_body(file_server)) for n in range(4)]
    apis[1].kill9()
    redis_server.stop()
    late = apis[0].client(key["key"]).submit(_body(file_server))  # accepted while the broker is down
    redis_server.start()
    for task in [*tasks, late]:
        done = apis[0].client(key["key"]).wait(task["id"], timeout=300)
        assert done["status"] == "succeeded", done["error"]
    assert json.dumps(ledger(data_dir, key["id"])[1]).count("refund") == 0

