"""Native task routes under /v1."""

from __future__ import annotations

from contextlib import nullcontext
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep, get_key, run_read, runtime_of
from infinitetalk.api.errors import ERROR_RESPONSES
from infinitetalk.api.fairness import fairness_of, key_id_of, run_submit
from infinitetalk.api.submission import drop_uploads, read_json, read_multipart, read_submission
from infinitetalk.api.waiting import event_stream, prefer_wait, wait_while_connected
from infinitetalk.tasks.models import TaskStatus
from infinitetalk.tasks.schemas import Estimate, TaskList, TaskPublic
from infinitetalk.tasks.views import task_public

router = APIRouter(prefix="/v1", tags=["tasks"], responses=ERROR_RESPONSES)

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "image": {"type": "string", "format": "binary"},
        "video": {"type": "string", "format": "binary"},
        "audio": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "mask": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "request": {"type": "string", "description": "JSON object with the other TaskCreate fields."},
    },
    "required": ["audio"],
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/TaskCreate"}},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    },
    "parameters": [
        {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
         "description": "Same key + same body: the same task. Same key + another body: 409."},
        {"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"}, "example": "wait=60",
         "description": "`wait=N` (N <= 300): answer when the task ends, or with the running task after N s."},
    ],
}


@router.post("/tasks", status_code=202, response_model=TaskPublic, openapi_extra=_CREATE_BODY)
async def create_task(request: Request, response: Response, runtime: RuntimeDep, key: KeyDep,
                      base_url: BaseUrlDep) -> TaskPublic:
    """Submit a portrait (or video) and speech; JSON with URLs / data URIs, or multipart with files."""
    wait = prefer_wait(request.headers.get("prefer"), runtime.settings.max_wait_s)
    # a wait's slot first: past the key's cap nothing is read, stored or charged
    with fairness_of(runtime).waits.held(key_id_of(key)) if wait else nullcontext():
        made: list[str] = []  # a multipart form's files: uploads only until the task has its own copies
        try:
            payload, body_hash = await read_submission(request, runtime, key, made)
            task, _ = await run_submit(runtime, key, partial(
                runtime.service.submit, key=key, payload=payload, base_url=base_url,
                idempotency_key=request.headers.get("idempotency-key"), body_hash=body_hash,
            ))
        finally:
            await drop_uploads(runtime, made)
        if wait:
            task = await wait_while_connected(request, runtime, key, task.id, wait)
            response.headers["Preference-Applied"] = f"wait={wait}"
    response.status_code = 200 if task.state.terminal else 202
    response.headers["Location"] = f"{base_url}/v1/tasks/{task.id}"
    return task_public(task, storage=runtime.storage, settings=runtime.settings)


@router.get("/tasks", response_model=TaskList)
async def list_tasks(request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20, cursor: str | None = None,
                     status: TaskStatus | None = None) -> Response:
    """The caller's own tasks, newest first, a page at a time."""
    runtime = runtime_of(request)

    def page() -> bytes:
        key = get_key(request, runtime)
        tasks, next_cursor = runtime.service.list(key=key, limit=limit, cursor=cursor, status=status)
        data = [task_public(task, storage=runtime.storage, settings=runtime.settings) for task in tasks]
        return TaskList(data=data, next_cursor=next_cursor).model_dump_json().encode()

    # Polls and lists are most of a busy server's requests: the key check, the query and the JSON take one
    # thread hop here, where RuntimeDep + KeyDep + a sync route would take four (FastAPI runs each sync
    # dependency, the route and the check of its return value in the thread pool, one hop each).
    return Response(await run_read(runtime, page), media_type="application/json")


@router.get("/tasks/{task_id}", response_model=TaskPublic)
async def get_task(task_id: str, request: Request, prefer: Annotated[str | None, Header()] = None) -> Response:
    """Status, progress, cost, timings, outputs (signed URLs) and error of one task."""
    runtime = runtime_of(request)
    wait = prefer_wait(prefer, runtime.settings.max_wait_s)
    if wait:
        key = await run_in_threadpool(get_key, request, runtime)
        with fairness_of(runtime).waits.held(key_id_of(key)):
            task = await wait_while_connected(request, runtime, key, task_id, wait)
        body = task_public(task, storage=runtime.storage, settings=runtime.settings).model_dump_json()
        return Response(body, media_type="application/json", headers={"Preference-Applied": f"wait={wait}"})

    def read() -> str:
        key = get_key(request, runtime)
        task = runtime.service.get(key=key, task_id=task_id)
        return task_public(task, storage=runtime.storage, settings=runtime.settings).model_dump_json()

    # The hot path of every poller: the same key check as KeyDep and the read in one thread hop (not three),
    # and the view serialized once (FastAPI would validate the TaskPublic again before dumping it).
    return Response(await run_read(runtime, read), media_type="application/json")


@router.get("/tasks/{task_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "progress events, then done"}})
async def task_event_stream(task_id: str, runtime: RuntimeDep, key: KeyDep) -> StreamingResponse:
    """Server-sent events: `progress` while the task changes, then `done`."""
    await run_in_threadpool(runtime.service.get, key=key, task_id=task_id)  # 404 before the stream starts
    return event_stream(runtime, key, task_id)  # 429 past the key's open streams


@router.post("/tasks/{task_id}/cancel", status_code=202, response_model=TaskPublic)
def cancel_task(task_id: str, runtime: RuntimeDep, key: KeyDep) -> TaskPublic:
    """Cancel: a queued task never runs (refunded); a running one stops at its next frame."""
    task = runtime.service.cancel(key=key, task_id=task_id)
    return task_public(task, storage=runtime.storage, settings=runtime.settings)


@router.delete("/tasks/{task_id}", response_model=TaskPublic)
def delete_task_outputs(task_id: str, runtime: RuntimeDep, key: KeyDep) -> TaskPublic:
    """Delete an ended task's video, live preview and stored inputs now rather than when they expire. The task
    stays listed with its cost and no outputs; 409 while it is queued or running."""
    task = runtime.service.delete_outputs(key=key, task_id=task_id)
    return task_public(task, storage=runtime.storage, settings=runtime.settings)


@router.post("/estimate", response_model=Estimate, openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/EstimateRequest"}},
    "multipart/form-data": {"schema": _MULTIPART_SCHEMA}}}})
async def estimate(request: Request, runtime: RuntimeDep, key: KeyDep) -> Estimate:
    """Probe the audio and price it, without creating a task. Takes the same bodies as POST /v1/tasks
    (JSON, or multipart with files; fields other than audio, audio_layout and resolution are ignored)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        payload = await read_json(request)
        return await run_submit(runtime, key, partial(runtime.service.estimate, key=key, payload=payload),
                                estimate=True)
    made: list[str] = []  # the form's files, kept only while they are priced
    try:
        payload, _ = await read_multipart(request, runtime, key, made)
        return await run_submit(runtime, key, partial(runtime.service.estimate, key=key, payload=payload),
                                estimate=True)
    finally:
        await drop_uploads(runtime, made)
