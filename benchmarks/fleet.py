"""The fleet's throughput and queue wait, and what the queue adds per task, with the instant engine.

For 1, 2 and 4 workers: one `infinitetalk serve` with a broker URL (Redis on loopback) and `infinitetalk
worker --gpus 0,..,N-1`, against the same number of render threads in one `serve` (the in-process
dispatcher). Each run submits the same small tasks (a 256-pixel portrait and 1.5 s of espeak speech as
data: URIs) as fast as one client can, waits for all, and reports tasks per minute (first submit to last
end) and the queue wait of each task (submit -> start, from the task's own timings). The difference of the
per-task wall time between the two dispatchers is the queue's added cost. Everything shares this machine's
cores, so the absolute rates say as much about the machine as about the fleet.

    .venv/bin/python benchmarks/fleet.py --tasks 40
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from api_load import _free_port, _small_inputs

CLI = [sys.executable, "-m", "infinitetalk.cli"]


def _wait_for(check, what: str, timeout: float = 120) -> None:  # noqa: ANN001 - a predicate
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run(workers: int, *, fleet: bool, tasks: int, inputs: dict, redis_url: str) -> dict:
    data = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    env = {**os.environ, "INFINITETALK_DATA_DIR": str(data), "INFINITETALK_ENGINE": "instant",
           "INFINITETALK_WORKERS": str(workers), "INFINITETALK_MAX_QUEUED_PER_KEY": str(tasks + 10)}
    if fleet:
        env["INFINITETALK_BROKER_URL"] = redis_url
        subprocess.run(["redis-cli", "-u", redis_url, "FLUSHDB"], check=True, capture_output=True)
    key = subprocess.run([*CLI, "keys", "create", "bench", "--balance", "1000", "--json"], env=env, check=True,
                         capture_output=True, text=True).stdout
    headers = {"X-API-Key": __import__("json").loads(key)["key"]}
    port = _free_port()
    procs = [subprocess.Popen([*CLI, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    if fleet:
        gpus = ",".join(str(index) for index in range(workers))
        procs.append(subprocess.Popen([*CLI, "worker", "--gpus", gpus], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _answers(f"{base}/readyz"), "the server")
        if fleet:
            _wait_for(lambda: "infinitetalk_workers_alive " + f"{workers}.0" in httpx.get(f"{base}/metrics").text,
                      f"{workers} workers")
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            started = time.monotonic()
            ids = [client.post("/v1/tasks", json=inputs).json()["id"] for _ in range(tasks)]
            done = []
            for task_id in ids:
                while (task := client.get(f"/v1/tasks/{task_id}").json())["status"] in ("queued", "running"):
                    time.sleep(0.05)
                done.append(task)
            elapsed = time.monotonic() - started
        assert all(task["status"] == "succeeded" for task in done), [t["error"] for t in done if t["error"]]
        waits = sorted(task["timings"]["queue_delay_ms"] for task in done)
        runs = [task["timings"]["execution_ms"] for task in done]
        return {"per_min": tasks / elapsed * 60, "wait_p50": statistics.median(waits),
                "wait_p99": waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))],
                "exec_ms": statistics.median(runs), "wall_per_task_s": elapsed / tasks}
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleet-bench-inputs-"))
    inputs = _small_inputs(work)
    port = _free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(work)], stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for(lambda: subprocess.run(["redis-cli", "-u", redis_url, "PING"], capture_output=True).returncode == 0,
                  "redis-server")
        print(f"{'dispatch':<12}{'workers':>8}{'tasks/min':>11}{'wait p50 ms':>13}{'wait p99 ms':>13}"
              f"{'exec p50 ms':>13}{'wall s/task':>13}")
        for count in (int(n) for n in args.workers.split(",")):
            rows = {}
            for fleet in (False, True):
                rows[fleet] = row = run(count, fleet=fleet, tasks=args.tasks, inputs=inputs, redis_url=redis_url)
                print(f"{'dramatiq' if fleet else 'in-process':<12}{count:>8}{row['per_min']:>11.1f}"
                      f"{row['wait_p50']:>13.0f}{row['wait_p99']:>13.0f}{row['exec_ms']:>13.0f}"
                      f"{row['wall_per_task_s']:>13.3f}", flush=True)
            added = (rows[True]["wall_per_task_s"] - rows[False]["wall_per_task_s"]) * 1000
            print(f"{'':<12}{'':>8}  the queue adds {added:+.0f} ms of wall time per task at {count} worker(s)")
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
