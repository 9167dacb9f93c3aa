"""Other keys' latency while one key abuses the server, before and during the abuse.

The server runs in its own process (`infinitetalk serve`, instant engine, one render thread parked on the first
task, a fresh SQLite data dir, its connection limit lowered to ``--max-connections`` so that the attacks seen at
1,000 connections fit a small machine). One abusive key, in a process of its own, runs every starvation pattern
at once:

- event streams on its own task, ``--max-connections`` of them (a refused one is tried again 2 s later);
- `Prefer: wait=300` polls whose client hangs up at once: ``--max-connections`` + 1 of them in the first 4 s,
  then more at the same pace, for as long as the abuse lasts;
- 45 estimates whose audio URL is a slow loopback server (headers, then a byte every 5 s), each sent again
  a second after it is answered.
Each pattern is spread out in time rather than sent in bursts: a burst of connections beyond the server's
connection limit is refused by that limit (and is a reverse proxy's per-address limit's business), whatever a
key may hold; what is measured here is what one key can hold.

Meanwhile other keys poll a task, list their tasks and create tasks (JSON with data: URIs) from client threads,
and /healthz is probed; their latencies are measured with no abuse, then during it.

    .venv/bin/python benchmarks/fairness.py --seconds 15
    PYTHONPATH=/path/to/an/older/checkout/src .venv/bin/python benchmarks/fairness.py   # the same, older code

Target: every route's p99 under 1 s during the abuse, and no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from api_load import PARKED, _small_inputs, start_server, stop_server

SLOW_ESTIMATES = 45
#: A request that takes longer than this counts as failed (and its latency as this long).
CLIENT_TIMEOUT_S = 30.0


class SlowFiles:
    """Loopback server: headers at once, then one byte of the body every ``every`` s until it is closed."""

    def __init__(self, every: float = 5.0) -> None:
        stop = self.stop = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "10000000")
                    self.end_headers()
                    while not stop.wait(every):
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *_args: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/speech.wav"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def make_key(work: Path, name: str) -> str:
    made = subprocess.run([sys.executable, "-m", "infinitetalk.cli", "keys", "create", name, "--balance", "1000000",
                           "--json", "--data-dir", str(work)], check=True, capture_output=True, text=True)
    return json.loads(made.stdout)["key"]


# --- the abusive key, in its own process ---------------------------------------------------------------------

PATTERNS = ("streams", "waits", "estimates")


def abuse(base: str, key: str, task_id: str, slow_url: str, connections: int, patterns: list[str],
          counts: dict) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # thousands of sockets
    asyncio.run(_abuse(base, key, task_id, slow_url, connections, patterns, counts))


async def _abuse(base: str, key: str, task_id: str, slow_url: str, connections: int, patterns: list[str],
                 counts: dict) -> None:
    host, port = base.removeprefix("http://").split(":")
    auth = f"Authorization: Bearer {key}\r\n"
    tally: Counter = Counter()

    async def request(head: str, body: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int]:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"{head}Host: {host}\r\n{auth}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        line = await reader.readline()
        return reader, writer, int(line.split()[1]) if line else 0

    async def stream(index: int) -> None:
        await asyncio.sleep(2 * index / connections)  # spread over 2 s
        while True:
            try:
                reader, writer, status = await request(f"GET /v1/tasks/{task_id}/events HTTP/1.1\r\n")
                tally[f"stream {status}"] += 1
                if status == 200:
                    while await reader.read(65536):  # held for as long as the server keeps it
                        pass
                writer.close()
            except OSError:
                tally["stream refused"] += 1
            await asyncio.sleep(2)

    async def hang_up() -> None:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(f"GET /v1/tasks/{task_id} HTTP/1.1\r\nHost: {host}\r\n{auth}"
                         "Prefer: wait=300\r\n\r\n".encode())
            await writer.drain()
            writer.close()  # and gone
            tally["wait hung up"] += 1
        except OSError:
            tally["wait refused"] += 1

    async def hang_ups() -> None:
        pace = 4.0 / (connections + 1)  # the limit's worth in 4 s
        while True:
            asyncio.ensure_future(hang_up())
            await asyncio.sleep(pace)

    async def estimate(index: int) -> None:
        await asyncio.sleep(index / SLOW_ESTIMATES)  # spread over 1 s
        body = json.dumps({"audio": slow_url}).encode()
        while True:
            try:
                reader, writer, status = await request("POST /v1/estimate HTTP/1.1\r\n"
                                                       "Content-Type: application/json\r\n", body)
                tally[f"estimate {status}"] += 1
                writer.close()
            except OSError:
                tally["estimate refused"] += 1
            await asyncio.sleep(1)

    async def report() -> None:
        while True:
            await asyncio.sleep(1)
            counts.update(tally)

    jobs = [report()]
    if "streams" in patterns:
        jobs += [stream(index) for index in range(connections)]
    if "waits" in patterns:
        jobs.append(hang_ups())
    if "estimates" in patterns:
        jobs += [estimate(index) for index in range(SLOW_ESTIMATES)]
    await asyncio.gather(*jobs)


# --- the others, measured ------------------------------------------------------------------------------------

def measure(base: str, keys: list[str], task_ids: list[str], body: dict, seconds: float) -> dict[str, dict]:
    """Each other key's thread polls its task, lists its tasks and (every 5th round) creates one; one more thread
    probes /healthz. Latency of every call, by route."""
    latencies: dict[str, list[float]] = {"/healthz": [], "status poll": [], "list (20)": [], "JSON submit": []}
    failures: Counter = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def call(name: str, client: httpx.Client, method: str, path: str, expect: int, **kwargs: object) -> None:
        started = time.perf_counter()
        try:
            status = client.request(method, path, **kwargs).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        elapsed = time.perf_counter() - started
        with lock:
            latencies[name].append(elapsed)
            if status != expect:
                failures[(name, status)] += 1

    def other(key: str, task_id: str) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=CLIENT_TIMEOUT_S) as client:
            round_ = 0
            while time.monotonic() < deadline:
                call("status poll", client, "GET", f"/v1/tasks/{task_id}", 200)
                call("list (20)", client, "GET", "/v1/tasks", 200, params={"limit": 20})
                if round_ % 5 == 0:
                    call("JSON submit", client, "POST", "/v1/tasks", 202, json=body)
                round_ += 1

    def healthz() -> None:
        with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_S) as client:
            while time.monotonic() < deadline:
                call("/healthz", client, "GET", "/healthz", 200)
                time.sleep(0.05)

    threads = [threading.Thread(target=other, args=pair) for pair in zip(keys, task_ids, strict=True)]
    threads.append(threading.Thread(target=healthz))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table = {}
    for name, values in latencies.items():
        ordered = sorted(values) or [float("nan")]
        table[name] = {"requests": len(values), "p50_ms": statistics.median(ordered) * 1000,
                       "p99_ms": ordered[int(0.99 * (len(ordered) - 1))] * 1000, "max_ms": ordered[-1] * 1000,
                       "failed": {str(status): n for (route, status), n in failures.items() if route == name}}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--others", type=int, default=3, help="well-behaved keys, one client thread each")
    parser.add_argument("--max-connections", type=int, default=200, help="the server's INFINITETALK_MAX_CONNECTIONS")
    parser.add_argument("--patterns", default=",".join(PATTERNS), help=f"which abuse, of {', '.join(PATTERNS)}")
    args = parser.parse_args()
    patterns = [pattern.strip() for pattern in args.patterns.split(",") if pattern.strip()]
    if unknown := set(patterns) - set(PATTERNS):
        parser.error(f"unknown patterns {', '.join(sorted(unknown))}; choose from {', '.join(PATTERNS)}")

    work = Path(tempfile.mkdtemp(prefix="infinitetalk-fairness-"))
    body = _small_inputs(work)
    settings = {**PARKED, "INFINITETALK_MAX_CONNECTIONS": str(args.max_connections),
                "INFINITETALK_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    server, base, first_key = start_server(work, settings)
    slow = SlowFiles()
    attacker: multiprocessing.Process | None = None
    try:
        keys = [first_key, *(make_key(work, f"other-{n}") for n in range(1, args.others))]
        abuser = make_key(work, "abuser")

        def submit(key: str) -> str:
            answer = httpx.post(f"{base}/v1/tasks", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            answer.raise_for_status()
            return answer.json()["id"]

        submit(first_key)  # the render thread parks on this one: every later task stays queued
        task_ids = [submit(key) for key in keys]
        abusers_task = submit(abuser)

        before = measure(base, keys, task_ids, body, args.seconds)
        counts = multiprocessing.Manager().dict()
        attacker = multiprocessing.Process(target=abuse, args=(base, abuser, abusers_task, slow.url,
                                                               args.max_connections, patterns, counts), daemon=True)
        attacker.start()
        time.sleep(min(10.0, args.seconds))  # the abuse builds up (streams opened, waits piled, estimates held)
        during = measure(base, keys, task_ids, body, args.seconds)
        abused = dict(counts)
    finally:
        if attacker is not None:
            attacker.kill()
            attacker.join()
        slow.close()
        stop_server(server)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nFairness: {os.cpu_count()} CPU(s) shared by server, abuser and clients; {args.others} other keys, "
          f"{args.seconds:g} s a phase; server max_connections {args.max_connections}, SQLite, instant engine")
    print(f"abuse ({', '.join(patterns)}): " + ", ".join(f"{name} x{n}" for name, n in sorted(abused.items())) + "\n")
    print(f"{'route':<12} {'phase':<7} {'requests':>8} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    worst = 0.0
    for name in before:
        for phase, table in (("before", before), ("during", during)):
            row = table[name]
            failed = sum(row["failed"].values())
            print(f"{name:<12} {phase:<7} {row['requests']:>8} {failed:>6} {row['p50_ms']:>8.1f} "
                  f"{row['p99_ms']:>8.1f} {row['max_ms']:>8.1f}")
            if failed:
                print(f"{'':<21}failed: " + ", ".join(f"{n} x {s}" for s, n in sorted(row["failed"].items())))
        worst = max(worst, during[name]["p99_ms"])
    errors = sum(sum(row["failed"].values()) for row in during.values())
    print(f"\ntarget: p99 under 1 s during the abuse, no failures: worst p99 {worst:.0f} ms, {errors} failed "
          f"({'met' if worst < 1000 and not errors else 'NOT met'})")


if __name__ == "__main__":
    main()
