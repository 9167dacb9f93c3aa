"""Start real processes and servers for the API tests: the infinitetalk server (uvicorn in a subprocess),
a loopback file server for input URLs, and a loopback webhook receiver."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import httpx
from services import PostgresServer

from infinitetalk.client import Client
from infinitetalk.config import Settings

T = TypeVar("T")
START_TIMEOUT_S = 90


# --- the task store: SQLite (the default) or PostgreSQL, chosen in one place -----------------------------

#: The PostgreSQL server of the run in progress, or None: each test server keeps SQLite in its data dir.
#: tests/api/conftest.py's ``api_store`` fixture sets it, so every test in tests/api runs on both stores.
_postgres: PostgresServer | None = None
#: data dir -> its own PostgreSQL database (a fresh store per data dir, as a fresh SQLite file would be)
_databases: dict[Path, str] = {}


def use_postgres(server: PostgresServer | None) -> None:
    global _postgres
    _postgres = server
    _databases.clear()


def bind_store(data_dir: Path, url: str) -> None:
    """Point ``data_dir`` at the store ``url`` (several data dirs, one store: the machines of a fleet)."""
    _databases[data_dir.resolve()] = url


def store_url(data_dir: Path) -> str:
    """The SQLAlchemy URL of the task store that servers on ``data_dir`` use."""
    key = data_dir.resolve()
    if _postgres is None and key not in _databases:
        return f"sqlite:///{(data_dir / 'infinitetalk.db').resolve()}"
    if key not in _databases:
        _databases[key] = _postgres.create_database(f"api_{uuid.uuid4().hex[:12]}")
    return _databases[key]


def settings_for(data_dir: Path, **values: object) -> Settings:
    """Settings for ``data_dir`` with its task store (what tests build in this process)."""
    return Settings(data_dir=data_dir, database_url=store_url(data_dir), **values)


def store_env(data_dir: Path) -> dict[str, str]:
    """The environment that points a server or CLI process at ``data_dir``'s task store."""
    return {"INFINITETALK_DATABASE_URL": store_url(data_dir)}


def wait_until(check: Callable[[], T], *, timeout: float = 30.0, every: float = 0.05, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, data_dir: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "infinitetalk.cli", *args, "--data-dir", str(data_dir)],
                            capture_output=True, text=True, timeout=120, env={**os.environ, **store_env(data_dir)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def create_key(data_dir: Path, name: str, *, balance: float = 10.0, rate: int | None = None,
               max_concurrent: int | None = None, models: tuple[str, ...] = ()) -> dict:
    args = ["keys", "create", name, "--balance", str(balance), "--json"]
    if rate is not None:
        args += ["--rate", str(rate)]
    if max_concurrent is not None:
        args += ["--max-concurrent", str(max_concurrent)]
    for model in models:
        args += ["--model", model]
    return json.loads(cli(*args, data_dir=data_dir))


def make_key(data_dir: Path, name: str, *, balance: float = 10.0, rate: int | None = None,
             max_concurrent: int | None = None, models: tuple[str, ...] = ()) -> dict:
    """Like ``create_key`` but in this process (the same code and database file, without a CLI start-up)."""
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.keys import create_key as create

    db, sessions = open_database(settings_for(data_dir))
    try:
        with sessions.begin() as session:
            made = create(session, name=name, balance=balance, creates_per_minute=rate,
                          max_concurrent=max_concurrent, allowed_models=list(models) or None)
            return {"id": made.record.id, "key": made.key, "webhook_secret": made.record.webhook_secret}
    finally:
        db.dispose()


def ledger(data_dir: Path, key_id: str) -> tuple[float, list[tuple[str, float, str | None]]]:
    """A key's balance and its ledger rows (kind, amount, task id), read from the store."""
    from sqlalchemy import select

    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import MICROS, ApiKey, LedgerEntry

    db, sessions = open_database(settings_for(data_dir))
    try:
        with sessions() as session:
            balance = session.get(ApiKey, key_id).balance_micros / MICROS
            rows = session.scalars(select(LedgerEntry).where(LedgerEntry.api_key_id == key_id)
                                   .order_by(LedgerEntry.id))
            return balance, [(row.kind, row.amount_micros / MICROS, row.task_id) for row in rows]
    finally:
        db.dispose()


class Server:
    """``infinitetalk serve`` on 127.0.0.1 and a free port, with its own data dir."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, allow_hosts: str = '["localhost"]',
                 open_mode: bool = False):
        """``open_mode``: started with --open, so loopback callers need no key."""
        self.data_dir, self.port, self.open_mode = data_dir, free_port(), open_mode
        self.env = {**os.environ, "INFINITETALK_FETCH_ALLOW_HOSTS": allow_hosts, **store_env(data_dir), **(env or {})}
        self.log_path = data_dir / "server.log"
        self.proc: subprocess.Popen | None = None
        self._clients: list[Client] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infinitetalk.cli", "serve", "--port", str(self.port),
             "--data-dir", str(self.data_dir), "--log-level", "info", *(["--open"] if self.open_mode else [])],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._healthy, timeout=START_TIMEOUT_S, every=0.1, what=f"server on {self.url}")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def client(self, key: str | None = None) -> Client:
        """A client that is closed when the server stops (so no socket is left to the garbage collector)."""
        client = Client(self.url, api_key=key, timeout=60)
        self._clients.append(client)
        return client

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Quiet:
    def log_message(self, *_args: object) -> None:  # keep test output clean
        pass


class _FileHandler(_Quiet, SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urllib.parse.urlsplit(self.path)
        if parts.path == "/redirect":  # /redirect?to=<url>: a 302 to anywhere, for the SSRF tests
            self.send_response(302)
            self.send_header("Location", urllib.parse.parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


class FileServer:
    """Serves a folder on loopback; URLs use the name `localhost`, the only allow-listed host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_FileHandler, directory=str(root)))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://localhost:{self._server.server_port}/{name}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int


def long_task(files: FileServer) -> dict:
    """A task of ~6 s of speech: on the keyed server's instant engine (40 ms a frame) several seconds of running,
    time enough to catch it running."""
    return {"image": files.url("grace_hopper.jpg"), "audio": files.url("hello.wav")}


class WebhookReceiver:
    """Records every POST; answers with ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(_Quiet, BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append(Received(dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://localhost:{self._server.server_port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
