"""CPU of the server while many SSE clients wait on one running task.

The server runs in its own process (`infinitetalk serve`, instant engine slowed to keep one task running,
a fresh SQLite data dir, one API key). This process opens N event streams (GET /v1/tasks/{id}/events) on
that task and reads every event. The server's CPU is its utime + stime from /proc/<pid>/stat over a window,
first with no streams (the running task, its heartbeats, the sweeper and webhook sender), then with N; the
difference is what the waiters cost. The task's heartbeat changes its progress twice a second, so every
stream gets about two events a second: the figure includes sending them, not only waiting.

    .venv/bin/python benchmarks/sse_waiters.py --waiters 300 --seconds 20

Target: 300 waiters under 10% of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import matplotlib
from api_load import cpu_seconds, start_server, stop_server

#: Slow enough that the task outlives the measurement, fast enough that progress moves at every heartbeat.
FRAME_DELAY_S = 0.25


def submit_long_task(base: str, key: str, work: Path, seconds: float) -> str:
    """A task whose render outlives ``seconds`` (speech long enough at FRAME_DELAY_S a frame)."""
    words = " ".join(["the quick brown fox jumps over the lazy dog"] * max(1, int(seconds / 8) + 2))
    wav = work / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), words], check=True)
    portrait = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    body = {"image": "data:image/jpeg;base64," + base64.b64encode(portrait.read_bytes()).decode(),
            "audio": "data:audio/wav;base64," + base64.b64encode(wav.read_bytes()).decode()}
    headers = {"Authorization": f"Bearer {key}"}
    task = httpx.post(f"{base}/v1/tasks", json=body, headers=headers, timeout=60).json()
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/v1/tasks/{task['id']}", headers=headers, timeout=10).json()["status"] != "running":
        if time.monotonic() > deadline:
            raise SystemExit("the task did not start")
        time.sleep(0.2)
    return task["id"]


async def watch_streams(base: str, key: str, task_id: str, waiters: int, pid: int, seconds: float) -> dict:
    """Open ``waiters`` event streams, wait until each has its first event, then measure for ``seconds``."""
    events = [0] * waiters
    connected = asyncio.Semaphore(0)
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=httpx.Timeout(60, connect=30, pool=None)) as client:

        async def stream(index: int) -> None:
            async with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
                response.raise_for_status()
                first = True
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        events[index] += 1
                        if first:
                            connected.release()
                            first = False
                        if line == "event: done" or stop.is_set():
                            return

        streams = [asyncio.create_task(stream(index)) for index in range(waiters)]
        for _ in range(waiters):
            async with asyncio.timeout(120):
                await connected.acquire()
        before_events, before_cpu, started = sum(events), cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall, received = cpu_seconds(pid) - before_cpu, time.monotonic() - started, sum(events) - before_events
        stop.set()
        for task in streams:
            task.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
    return {"cpu": cpu, "wall": wall, "events": received}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiters", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured window")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sse-waiters-"))
    # one key opens every stream: its cap on open streams (8 by default) is lifted to the count measured
    server, base, key = start_server(work, {"INFINITETALK_INSTANT_FRAME_DELAY_S": str(FRAME_DELAY_S),
                                            "INFINITETALK_MAX_STREAMS_PER_KEY": str(args.waiters)})
    try:
        task_id = submit_long_task(base, key, work, 3 * args.seconds + 60)
        before, started = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.seconds)
        baseline = {"cpu": cpu_seconds(server.pid) - before, "wall": time.monotonic() - started, "events": 0}
        loaded = asyncio.run(watch_streams(base, key, task_id, args.waiters, server.pid, args.seconds))
    finally:
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nSSE waiters on one running task: {os.cpu_count()} CPU(s) shared by server and client, "
          f"{args.seconds:g} s windows\n")
    print(f"{'waiters':>7} {'server CPU s':>12} {'% of a core':>11} {'events/s received':>17}")
    for waiters, row in ((0, baseline), (args.waiters, loaded)):
        print(f"{waiters:>7} {row['cpu']:>12.2f} {row['cpu'] / row['wall']:>11.1%} "
              f"{row['events'] / row['wall']:>17.0f}")
    extra = loaded["cpu"] / loaded["wall"] - baseline["cpu"] / baseline["wall"]
    print(f"\nthe {args.waiters} waiters cost {extra:.1%} of a core (target: under 10%)")


if __name__ == "__main__":
    main()
