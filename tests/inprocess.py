"""The task service as one API process wires it (``runtime.server.Runtime``), built in the test's own process on
a SQLite file in a temp folder: the fast lane's way to run real tasks through the real lifecycle, service, runner,
dispatcher and reaper, without a server subprocess or any other service."""

from __future__ import annotations

import base64
import mimetypes
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from infinitetalk.config import Settings
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.keys import create_key
from infinitetalk.tasks.models import ApiKey, LedgerEntry, Task, TaskStatus

#: What an instant-engine task costs at the default 480p rate and the 5 s minimum ($0.03 x 5 s), in micro-dollars.
MIN_PRICE_MICROS = 150_000
TERMINAL = frozenset({TaskStatus.SUCCEEDED.value, TaskStatus.FAILED.value, TaskStatus.CANCELED.value})


def settings_in(data_dir: Path, **values: object) -> Settings:
    """Settings for one machine in ``data_dir``: its SQLite file and local storage there, no other service."""
    return Settings(**{"data_dir": data_dir, "database_url": None, "broker_url": None, "storage_url": None, **values})


@contextmanager
def api_side(data_dir: Path, **values: object) -> Iterator[Runtime]:
    """An API process of a fleet whose queue no worker consumes (a stub broker of its own): its tasks stay queued
    until the test moves them itself."""
    runtime = Runtime(settings_in(data_dir, broker_url=f"stub://{uuid.uuid4().hex}", **values))
    try:
        yield runtime
    finally:
        runtime.stop()


def data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode()}"


def new_key(runtime: Runtime, name: str, *, balance: float = 10.0) -> ApiKey:
    with runtime.sessions.begin() as session:
        return create_key(session, name=name, balance=balance).record


def balance_micros(runtime: Runtime, key: ApiKey) -> int:
    with runtime.sessions() as session:
        return session.get(ApiKey, key.id).balance_micros


def ledger(runtime: Runtime, key: ApiKey) -> list[tuple[str, int, str | None]]:
    """The key's ledger rows, oldest first: (kind, amount in micro-dollars, task id)."""
    with runtime.sessions() as session:
        rows = session.scalars(select(LedgerEntry).where(LedgerEntry.api_key_id == key.id).order_by(LedgerEntry.id))
        return [(row.kind, row.amount_micros, row.task_id) for row in rows]


def row(runtime: Runtime, task_id: str) -> Task:
    with runtime.sessions() as session:
        task = session.get(Task, task_id)
        assert task is not None, f"no row for {task_id}"
        return task


def wait_for(check: Callable[[], object], *, timeout: float = 30.0, what: str) -> object:
    """Poll ``check`` until it is truthy (never a bare sleep); fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return value


def wait_ended(runtime: Runtime, task_id: str, *, timeout: float = 30.0) -> Task:
    wait_for(lambda: row(runtime, task_id).status in TERMINAL, timeout=timeout, what=f"task {task_id} to end")
    return row(runtime, task_id)
