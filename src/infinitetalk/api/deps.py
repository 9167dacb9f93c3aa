"""Typed dependencies: the runtime, the caller's key, the base URL."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.local_callers import NEED_A_KEY, refusal
from infinitetalk.errors import Unauthorized
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_runtime(request: Request) -> Runtime:
    # async: a plain attribute read must not cost a trip through the thread pool on every request
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

T = TypeVar("T")

#: Status polls and lists on SQLite, one after another on one thread of their own. The GIL runs one read at a
#: time whatever the thread count, and a WAL reader does not wait for writers; in the shared pool each read
#: woke whichever of its threads was idle (cold caches, a GIL handover per hop): 0.75 -> 0.64 ms of server CPU
#: per poll (benchmarks/api_load.py).
_SQLITE_READS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="infinitetalk-reads")


async def run_read(runtime: Runtime, read: Callable[[], T]) -> T:
    """``read`` (a key check and store reads, no writes) off the event loop: the event loop never waits on the
    store. PostgreSQL reads wait on the network, so they keep the shared pool's many threads."""
    if runtime.db.dialect.name != "sqlite":
        return await run_in_threadpool(read)
    context = contextvars.copy_context()  # as run_in_threadpool does: the read sees the request's context
    return await asyncio.get_running_loop().run_in_executor(_SQLITE_READS, context.run, read)


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    return request.headers.get("x-api-key") or None  # header names are case-insensitive: X-API-Key too


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def get_key(request: Request, runtime: RuntimeDep) -> ApiKey | None:
    """The caller's key; None for a key-less caller on this machine when the operator started the server
    `--open`: loopback, not forwarded by a proxy, and not a web page of another origin (see local_callers)."""
    presented = _presented_key(request)
    if presented:
        return runtime.keys.authenticate(presented)
    if runtime.settings.open and _loopback(request.client.host if request.client else None):
        refused = refusal(request.headers, request.scope.get("scheme", "http"), runtime.settings)
        if refused is None:
            return None
        raise refused
    raise Unauthorized(NEED_A_KEY)


KeyDep = Annotated[ApiKey | None, Depends(get_key)]


def get_base_url(request: Request, runtime: RuntimeDep) -> str:
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


BaseUrlDep = Annotated[str, Depends(get_base_url)]
