"""Typed dependencies: the runtime, the caller's key, the base URL."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from infinitetalk.tasks.errors import Unauthorized
from infinitetalk.tasks.models import ApiKey
from infinitetalk.tasks.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def get_runtime(request: Request) -> Runtime:
    # async: a plain attribute read must not cost a trip through the thread pool on every request
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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
    """The caller's key; None for a key-less loopback caller when the operator started the server `--open`."""
    presented = _presented_key(request)
    if presented:
        return runtime.keys.authenticate(presented)
    if runtime.settings.open and _loopback(request.client.host if request.client else None):
        return None
    raise Unauthorized("send an API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>' "
                       "(`infinitetalk keys create NAME` makes one)")


KeyDep = Annotated[ApiKey | None, Depends(get_key)]


def get_base_url(request: Request, runtime: RuntimeDep) -> str:
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


BaseUrlDep = Annotated[str, Depends(get_base_url)]
