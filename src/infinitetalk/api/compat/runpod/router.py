"""RunPod-compatible serverless routes under ``/v2/{endpoint_id}``: run, runsync, status, cancel, health.
Its SDK builds every URL from ``RUNPOD_ENDPOINT_BASE_URL`` (set it to ``<our base URL>/v2``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from infinitetalk.api.compat import common, openapi
from infinitetalk.api.compat.runpod.protocol import (
    ENDPOINTS,
    ERRORS,
    NAMES,
    RUNSYNC_WAIT_S,
    Health,
    Job,
    JobStatus,
    RunRequest,
    RunRequestDoc,
    job,
)
from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.errors import Conflict, InfiniteTalkError, NotFound
from infinitetalk.tasks.models import TaskStatus


def _error_body(exc: InfiniteTalkError, status: int) -> dict:
    # the documented 400 body is {status: FAILED, error}; other errors carry just the error
    return {"status": "FAILED", "error": exc.message} if status == 400 else {"error": exc.message}


render_error = common.error_renderer(_error_body)


router = APIRouter(prefix="/v2/{endpoint_id}", tags=["compat: RunPod"],
                   route_class=common.translating_route(render_error))


def _endpoint(endpoint_id: str) -> str:
    if endpoint_id not in ENDPOINTS:
        raise NotFound(f"endpoint {endpoint_id} not found")
    return ENDPOINTS[endpoint_id]


@router.post("/run", response_model=None,
             openapi_extra=openapi.merge(openapi.json_body("runpod", RunRequestDoc), openapi.fixed_path(endpoint_id=list(ENDPOINTS))),
             responses=openapi.answers("runpod", {200: ("Queued: the job's id and status", JobStatus), **ERRORS}))
async def run(endpoint_id: str, request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """Queue a job; answers ``{id, status: IN_QUEUE}``."""
    mode = _endpoint(endpoint_id)
    body = await common.read_body(request, RunRequest)
    task = await common.submit(runtime, key, body.to_payload(mode), base_url, names=NAMES, callback_format="runpod")
    return {"id": task.id, "status": job(task, common.view(runtime, task))["status"]}


@router.post("/runsync", response_model=None,
             openapi_extra=openapi.merge(openapi.json_body("runpod", RunRequestDoc), openapi.fixed_path(endpoint_id=list(ENDPOINTS))),
             responses=openapi.answers("runpod", {200: ("The job once it ended (or, after the wait, still running)",
                                                         Job), **ERRORS}))
async def runsync(endpoint_id: str, request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep,
                  wait: Annotated[int | None, Query(ge=1000, le=300_000, description="ms to hold the request")] = None
                  ) -> dict:
    """Run and answer when the job ends (or, after the wait, with the job still in progress)."""
    mode = _endpoint(endpoint_id)
    body = await common.read_body(request, RunRequest)
    task = await common.submit(runtime, key, body.to_payload(mode), base_url, names=NAMES, callback_format="runpod")
    task = await common.wait(request, runtime, key, task.id, (wait / 1000) if wait else RUNSYNC_WAIT_S)
    return job(task, common.view(runtime, task))


@router.get("/status/{job_id}", response_model=None, openapi_extra=openapi.fixed_path(endpoint_id=list(ENDPOINTS)),
            responses=openapi.answers("runpod", {200: ("The job as it is now", Job), **ERRORS}))
async def status(endpoint_id: str, job_id: str, runtime: RuntimeDep, key: KeyDep) -> dict:
    _endpoint(endpoint_id)
    task = await common.get(runtime, key, job_id)
    return job(task, common.view(runtime, task))


@router.post("/cancel/{job_id}", response_model=None, openapi_extra=openapi.fixed_path(endpoint_id=list(ENDPOINTS)),
             responses=openapi.answers("runpod", {200: ("The job's status after the cancel", JobStatus), **ERRORS}))
def cancel(endpoint_id: str, job_id: str, runtime: RuntimeDep, key: KeyDep) -> dict:
    """Cancel; a job that already ended keeps its status."""
    _endpoint(endpoint_id)
    try:
        task = runtime.service.cancel(key=key, task_id=job_id)
    except Conflict:
        task = runtime.service.get(key=key, task_id=job_id)
    return {"id": task.id, "status": job(task, common.view(runtime, task))["status"]}


@router.get("/health", response_model=None, openapi_extra=openapi.fixed_path(endpoint_id=list(ENDPOINTS)),
            responses=openapi.answers("runpod", {200: ("Jobs of this key by state, and this server's workers",
                                                        Health), **ERRORS}))
def health(endpoint_id: str, runtime: RuntimeDep, key: KeyDep) -> dict:
    """Jobs of this key by state (the first 100 of each) and this server's workers."""
    _endpoint(endpoint_id)
    counts = {}
    for state in TaskStatus:
        tasks, _ = runtime.service.list(key=key, limit=100, status=state)
        counts[state] = len(tasks)
    running = counts[TaskStatus.RUNNING]
    workers = runtime.settings.workers
    return {"jobs": {"completed": counts[TaskStatus.SUCCEEDED], "failed": counts[TaskStatus.FAILED],
                     "inProgress": running, "inQueue": counts[TaskStatus.QUEUED], "retried": 0},
            "workers": {"idle": max(workers - running, 0), "running": min(running, workers), "ready": workers,
                        "initializing": 0, "throttled": 0, "unhealthy": 0}}


# a ``webhook`` gets the job as the status route shows it
