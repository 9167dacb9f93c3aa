"""Load on the task API: the server's own CPU time per request, beside /healthz's, for the hot routes.

The server runs in its own process (`infinitetalk serve`, instant engine, one render thread, a fresh SQLite
data dir, one API key); this process is the load generator, with N client threads. Both share the machine's
cores, so the client's req/s and latencies say as much about the client as about the server. What this
benchmark is for is the server's CPU per request: its utime + stime from /proc/<pid>/stat, read before and after
each phase, less what the idle server burns in the same time (its sweeper, webhook sender and runner polls).

Phases: GET /healthz (the floor: HTTP + routing, no auth, no database), GET /v1/tasks/{id} (status poll),
GET /v1/tasks (a page of 20), POST /v1/tasks as JSON with a small portrait and a short espeak-ng WAV as data:
URIs (each one decoded, probed, priced and stored like a real one). The render thread is kept asleep on the
first task (a long instant-engine frame delay), so no rendering shares the process while it is measured.

    .venv/bin/python benchmarks/api_load.py --seconds 8 --concurrency 4
    .venv/bin/python benchmarks/api_load.py --profile /tmp/prof   # + py-spy (pip install py-spy) per phase

Targets: a status poll at most 3x a /healthz, a submit at most 10 ms of server CPU.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import matplotlib
from PIL import Image

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_REQUESTS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces; fields follow its ')'
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _small_inputs(work: Path) -> dict:
    """A 256-pixel JPEG portrait and about 1.5 s of speech, as data: URIs."""
    wav = work / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "Open wide, then close."], check=True)
    portrait = Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    portrait.thumbnail((256, 256))
    jpeg = io.BytesIO()
    portrait.convert("RGB").save(jpeg, "JPEG", quality=85)
    return {"image": "data:image/jpeg;base64," + base64.b64encode(jpeg.getvalue()).decode(),
            "audio": "data:audio/wav;base64," + base64.b64encode(wav.read_bytes()).decode()}


class Profiler:
    """py-spy recording the server during one phase, as collapsed stacks (one file per phase)."""

    def __init__(self, folder: Path | None, pid: int) -> None:
        self.folder, self.pid, self.proc = folder, pid, None

    def start(self, phase: str) -> None:
        if self.folder is None:
            return
        out = self.folder / f"{phase.replace(' ', '_').replace('/', '')}.txt"
        self.proc = subprocess.Popen(["py-spy", "record", "--pid", str(self.pid), "--format", "raw", "--rate", "250",
                                      "--nonblocking", "--threads", "--output", str(out)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # py-spy attaches before the phase starts counting

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(2)  # SIGINT: py-spy writes its file and exits
            self.proc.wait(timeout=60)
            self.proc = None


def run_phase(name: str, seconds: float, concurrency: int, call: Callable[[httpx.Client], int], *, pid: int,
              idle_cpu_per_s: float, profiler: Profiler) -> dict:
    """``call`` from ``concurrency`` threads for ``seconds``; the server's CPU per request over that window."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    clients = [httpx.Client(timeout=60) for _ in range(concurrency)]
    for index in range(WARMUP_REQUESTS):  # first calls pay lazy imports and caches; not what is measured
        call(clients[index % concurrency])
    profiler.start(name)
    deadline = time.monotonic() + seconds

    def worker(client: httpx.Client) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status = call(client)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] += 1

    threads = [threading.Thread(target=worker, args=(client,)) for client in clients]
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.monotonic() - began, cpu_seconds(pid) - cpu_before
    profiler.stop()
    for client in clients:
        client.close()
    ordered = sorted(latencies)
    busy = max(cpu - idle_cpu_per_s * wall, 0.0)
    return {
        "name": name, "requests": len(ordered), "errors": {s: n for s, n in statuses.items() if s >= 300},
        "per_s": len(ordered) / wall,
        "p50_ms": statistics.median(ordered) * 1000, "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000,
        "cpu_ms": busy / len(ordered) * 1000, "server_busy": cpu / wall,
    }


#: The one render thread sleeps an hour in the first task's first frame: queued tasks stay queued and no
#: encoding shares the server's CPU counters. The queue cap is lifted so every submit is a real one.
PARKED = {"INFINITETALK_INSTANT_FRAME_DELAY_S": "3600", "INFINITETALK_MAX_QUEUED_PER_KEY": "1000000"}


def start_server(work: Path, settings: dict[str, str] = PARKED) -> tuple[subprocess.Popen, str, str]:
    """`infinitetalk serve` (instant engine, one render thread, ``settings`` on top) and a funded key."""
    cli = [sys.executable, "-m", "infinitetalk.cli"]
    made = subprocess.run([*cli, "keys", "create", "load", "--balance", "1000000", "--json", "--data-dir", str(work)],
                          check=True, capture_output=True, text=True)
    key = json.loads(made.stdout)["key"]
    port = _free_port()
    env = {**os.environ, "INFINITETALK_ENGINE": "instant", "INFINITETALK_WORKERS": "1", **settings}
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir", str(work), "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return server, base, key
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start (exit {server.poll()})")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:  # the render thread is asleep in its hour-long frame
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--profile", type=Path, help="write py-spy collapsed stacks per phase into this folder")
    args = parser.parse_args()
    if args.profile:
        if shutil.which("py-spy") is None:
            raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="infinitetalk-load-"))
    body = _small_inputs(work)
    server, base, key = start_server(work)
    headers = {"Authorization": f"Bearer {key}"}
    ids: list[str] = []
    try:
        def submit(client: httpx.Client) -> int:
            response = client.post(f"{base}/v1/tasks", json=body, headers=headers)
            if response.status_code == 202:
                ids.append(response.json()["id"])
            return response.status_code

        def healthz(client: httpx.Client) -> int:
            return client.get(f"{base}/healthz").status_code

        def poll(client: httpx.Client) -> int:
            task_id = ids[time.perf_counter_ns() % len(ids)]
            return client.get(f"{base}/v1/tasks/{task_id}", headers=headers).status_code

        def page(client: httpx.Client) -> int:
            return client.get(f"{base}/v1/tasks", params={"limit": 20}, headers=headers).status_code

        with httpx.Client(timeout=60) as client:
            for _ in range(25):  # tasks to poll and list (one of them holds the render thread)
                if (status := submit(client)) != 202:
                    raise SystemExit(f"a seed submit answered {status}")
        idle_window = min(args.seconds, 5.0)
        before = cpu_seconds(server.pid)
        time.sleep(idle_window)
        idle = (cpu_seconds(server.pid) - before) / idle_window

        profiler = Profiler(args.profile, server.pid)
        phases = [("/healthz", healthz), ("status poll", poll), ("list (20)", page), ("JSON submit", submit)]
        results = [run_phase(name, args.seconds, args.concurrency, call, pid=server.pid, idle_cpu_per_s=idle,
                             profiler=profiler) for name, call in phases]
    finally:
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)

    floor = results[0]["cpu_ms"]
    print(f"\nAPI load: {os.cpu_count()} CPU(s) shared by server and client, {args.concurrency} client threads, "
          f"{args.seconds:g} s a phase, SQLite, instant engine (render thread parked)")
    print(f"idle server: {idle * 1000:.1f} ms CPU per second (subtracted below)\n")
    print(f"{'operation':<12} {'requests':>8} {'non-2xx':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'server busy':>11} {'server CPU ms/req':>17} {'x /healthz':>10}")
    for row in results:
        print(f"{row['name']:<12} {row['requests']:>8} {sum(row['errors'].values()):>7} {row['per_s']:>7.0f} {row['p50_ms']:>7.1f} "
              f"{row['p99_ms']:>7.1f} {row['server_busy']:>10.0%} {row['cpu_ms']:>17.2f} "
              f"{row['cpu_ms'] / floor:>10.1f}")
    for row in results:
        if row["errors"]:
            print(f"  {row['name']}: not 2xx: " + ", ".join(f"{n} x {s}" for s, n in sorted(row["errors"].items())))
    poll_ratio = results[1]["cpu_ms"] / floor
    submit_ms = results[3]["cpu_ms"]
    print(f"\ntargets: status poll <= 3x /healthz: {poll_ratio:.1f}x ({'met' if poll_ratio <= 3 else 'NOT met'}); "
          f"submit <= 10 ms: {submit_ms:.1f} ms ({'met' if submit_ms <= 10 else 'NOT met'})")
    print("req/s and latencies are bound by the client sharing the cores; server CPU per request is the measure.")


if __name__ == "__main__":
    main()
