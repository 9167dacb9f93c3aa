"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process answers. On the event loop itself: no database, no worker thread, so a busy store or a
    full thread pool never makes a live server look dead."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """The store is reachable and migrated, and the broker (a fleet) answers. Anyone may ask, so a part that is
    down is named in a word ("database", "broker"); where it is and what it said go to the server log."""
    part = await run_in_threadpool(runtime.not_ready)
    if part is not None:
        return JSONResponse({"status": "not ready", "part": part}, status_code=503)
    return JSONResponse({"status": "ready", "engine": runtime.engine_name})


@router.get("/metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text: queue depth, running tasks, durations, failures; ``infinitetalk_up{part=...}`` says
    whether the database and the broker answered (the gauges read from a part that did not are left out)."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
