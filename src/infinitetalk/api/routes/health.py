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
    """The store is reachable and migrated, the broker (a fleet) and the bucket (S3) answer. Anyone may ask, so a
    part that is down is named in a word ("database", "broker", "bucket"); where it is and what it said go to the
    server log. ``workers``: the workers that can take a task (this server's render threads, or a fleet's live
    worker processes). A fleet with none is still ready: its API takes tasks, and they wait in the queue."""
    part = await run_in_threadpool(runtime.not_ready)
    if part is not None:
        return JSONResponse({"status": "not ready", "part": part}, status_code=503)
    workers = await run_in_threadpool(runtime.workers_alive)
    if workers is None:  # the store stopped answering since the probe above
        return JSONResponse({"status": "not ready", "part": "database"}, status_code=503)
    return JSONResponse({"status": "ready", "engine": runtime.engine_name, "workers": workers})


@router.get("/metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text: queue depth, running tasks, workers, durations, failures; ``infinitetalk_up{part=...}``
    says whether the database and the broker answered (the gauges read from a part that did not are left out)."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
