"""/readyz carries the workers that can take a task, and /metrics counts them: a single server's render threads
(which have no heartbeat rows), or a fleet's live worker processes; a bucket that stops answering makes the
server not ready, named in a word."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key, wait_until
from services import redis_server, s3_server


def _gauges(server: Server) -> dict[str, float]:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def test_a_single_server_counts_its_render_threads(keyed_server: Server, file_server: FileServer) -> None:
    assert httpx.get(f"{keyed_server.url}/readyz", timeout=30).json() == {"status": "ready", "engine": "instant",
                                                                          "workers": 2}
    assert _gauges(keyed_server)["infinitetalk_workers_alive"] == 2.0
    key = make_key(keyed_server.data_dir, "counted", balance=5.0)
    client = keyed_server.client(key["key"])
    # ~6 s of speech at 40 ms a frame: seconds of running to catch
    task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")})
    try:
        wait_until(lambda: client.get(task["id"])["status"] == "running", timeout=60, what="the task running")
        gauges = _gauges(keyed_server)
        assert gauges["infinitetalk_workers_alive"] == 2.0
        assert gauges["infinitetalk_workers_busy"] >= 1.0 and gauges["infinitetalk_tasks_running"] >= 1.0
    finally:
        client.cancel(task["id"])


@pytest.mark.sqlite_only  # the fleet's worker rows are counted alike on both stores (tests/fleet run them)
def test_a_fleet_api_counts_live_worker_processes(tmp_path: Path) -> None:
    with redis_server() as redis:
        env = {"INFINITETALK_BROKER_URL": redis.url, "INFINITETALK_HEARTBEAT_INTERVAL_S": "0.5"}
        with Server(tmp_path, env=env) as server:
            # no worker yet: ready all the same (tasks wait in the queue), and says so
            assert httpx.get(f"{server.url}/readyz", timeout=30).json() == {"status": "ready", "engine": "workers",
                                                                           "workers": 0}
            assert _gauges(server)["infinitetalk_workers_alive"] == 0.0
            with open(tmp_path / "worker.log", "wb") as log:
                worker = subprocess.Popen([sys.executable, "-m", "infinitetalk.cli", "worker", "--engine", "instant",
                                           "--data-dir", str(tmp_path)], env={**os.environ, **server.env},
                                          stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=30).json().get("workers") == 1,
                           timeout=60, every=0.2, what="the worker counted by /readyz")
                assert _gauges(server)["infinitetalk_workers_alive"] == 1.0
            finally:
                worker.terminate()
                worker.wait(timeout=30)


@pytest.mark.sqlite_only  # about the bucket, not the store
def test_a_bucket_that_stops_answering_makes_it_not_ready(tmp_path: Path) -> None:
    bucket = s3_server()
    s3 = bucket.__enter__()
    try:
        env = {"INFINITETALK_STORAGE_URL": f"s3://{s3.bucket}/ready", "INFINITETALK_S3_ENDPOINT_URL": s3.endpoint_url,
               "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
               "AWS_DEFAULT_REGION": s3.region, "INFINITETALK_ENGINE": "instant"}
        with Server(tmp_path, env=env) as server:
            assert httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200
            bucket.__exit__(None, None, None)  # SeaweedFS stops
            bucket = None
            ready = httpx.get(f"{server.url}/readyz", timeout=60)
            assert ready.status_code == 503
            assert ready.json() == {"status": "not ready", "part": "bucket"}  # where and why: the log's
            assert server.log().count("health: the bucket is not answering") == 1
    finally:
        if bucket is not None:
            bucket.__exit__(None, None, None)
