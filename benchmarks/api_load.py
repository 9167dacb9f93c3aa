"""Load on the task API: submits/s and status polls/s with p50/p99 latency.

The server runs in its own process (`infinitetalk serve`, instant engine, one worker, a fresh SQLite data
dir, one API key); this process is the load generator, with N client threads. Submits carry a short
espeak-ng WAV and a portrait as data: URIs, so each one is decoded and probed like a real one.

    .venv/bin/python benchmarks/api_load.py --seconds 10 --concurrency 8
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import matplotlib


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


def _run(name: str, seconds: float, concurrency: int, call) -> dict:  # noqa: ANN001 - call(client) -> None
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(client: httpx.Client) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.perf_counter()
            ok = call(client)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors += 0 if ok else 1

    clients = [httpx.Client(timeout=60) for _ in range(concurrency)]
    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    for client in clients:
        client.close()
    ordered = sorted(latencies)
    return {
        "name": name, "requests": len(ordered), "errors": errors, "per_s": len(ordered) / wall,
        "p50_ms": statistics.median(ordered) * 1000, "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="infinitetalk-load-"))
    wav = work / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Open wide, then close."], check=True)
    portrait = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    body = {"image": _data_uri(portrait, "image/jpeg"), "audio": _data_uri(wav, "audio/wav")}

    cli = [sys.executable, "-m", "infinitetalk.cli"]
    made = subprocess.run([*cli, "keys", "create", "load", "--balance", "1000000", "--json", "--data-dir", str(work)],
                          check=True, capture_output=True, text=True)
    key = __import__("json").loads(made.stdout)["key"]
    port = _free_port()
    env = {**os.environ, "INFINITETALK_ENGINE": "instant", "INFINITETALK_WORKERS": "1"}
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir", str(work), "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        ids: list[str] = []

        def submit(client: httpx.Client) -> bool:
            response = client.post(f"{base}/v1/tasks", json=body, headers=headers)
            if response.status_code == 202:
                ids.append(response.json()["id"])
            return response.status_code == 202

        def poll(client: httpx.Client) -> bool:
            task_id = ids[int(time.perf_counter_ns()) % len(ids)]
            return client.get(f"{base}/v1/tasks/{task_id}", headers=headers).status_code == 200

        results = [_run("submit", args.seconds, args.concurrency, submit)]
        results.append(_run("status poll", args.seconds, args.concurrency, poll))
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"\nAPI load: {os.cpu_count()} CPU(s), {args.concurrency} client threads, {args.seconds:g} s each, "
          "SQLite, instant engine (1 render thread running meanwhile)\n")
    print(f"{'operation':<12} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for row in results:
        print(f"{row['name']:<12} {row['requests']:>8} {row['errors']:>6} {row['per_s']:>8.1f} "
              f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}")


if __name__ == "__main__":
    main()
