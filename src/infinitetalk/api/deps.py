"""Typed dependencies: the runtime, the caller's key, the base URL."""

from __future__ import annotations

import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from infinitetalk.tasks import keys
from infinitetalk.tasks.errors import Unauthorized
from infinitetalk.tasks.models import ApiKey
from infinitetalk.tasks.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


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
    """The caller's key; None in open mode (no keys exist), which only loopback callers get."""
    presented = _presented_key(request)
    with runtime.sessions() as session:
        if presented:
            return keys.authenticate(session, key=presented)
        if keys.any_active(session):
            raise Unauthorized("send an API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    if not runtime.settings.insecure and not _loopback(request.client.host if request.client else None):
        raise Unauthorized("this server has no API keys, so it only serves its own machine; create a key")
    return None


KeyDep = Annotated[ApiKey | None, Depends(get_key)]


def get_base_url(request: Request, runtime: RuntimeDep) -> str:
    return (runtime.settings.public_url or str(request.base_url)).rstrip("/")


BaseUrlDep = Annotated[str, Depends(get_base_url)]
