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
    """The store is reachable and migrated, and an engine is loaded."""
    try:
        ok = await run_in_threadpool(runtime.ready)
    except Exception as exc:  # any failure to reach the store means not ready
        return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
    body = {"status": "ready" if ok else "not ready", "engine": runtime.engine_name}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text: queue depth, running tasks, durations, failures."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
