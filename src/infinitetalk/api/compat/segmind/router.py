"""Segmind-compatible routes: ``POST /v1/infinite-talk`` (synchronous), ``POST /v2/infinite-talk`` and the
v2 request status/result routes its SDK polls (``SegmindClient(base_url=".../v1").submit_async(...).wait()``)."""

from __future__ import annotations

import base64
import contextlib
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.compat import common, openapi
from infinitetalk.api.compat.segmind.protocol import (
    ERRORS,
    MODELS,
    NAMES,
    RESULT_RETENTION_S,
    Base64Video,
    ErrorAnswer,
    InfiniteTalkInput,
    InfiniteTalkRequest,
    ResultAnswer,
    StatusAnswer,
    SubmitAnswer,
    error_text,
    result_body,
    status_body,
    submitted,
)
from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.errors import InfiniteTalkError, NotFound
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus, utcnow

#: Our status -> Segmind's documented one: 406 is its "Insufficient Credits".
HTTP = {**common.PROVIDER_STATUS, 402: 406}
#: A FAILED request is served as HTTP 422, the error in the body.
FAILED_HTTP = 422


def _error_body(exc: InfiniteTalkError, status: int) -> dict:
    return {"error": exc.message}


render_error = common.error_renderer(_error_body, HTTP)


router = APIRouter(tags=["compat: Segmind"], route_class=common.translating_route(render_error))


def _model(slug: str) -> None:
    if slug not in MODELS:
        raise NotFound(f"Model not found: {slug}")


async def _submit(slug: str, request: Request, runtime: Runtime, key: ApiKey | None, base_url: str
                  ) -> tuple[Task, InfiniteTalkInput]:
    _model(slug)
    body = await common.read_body(request, InfiniteTalkInput)
    return await common.submit(runtime, key, body.to_payload(), base_url, names=NAMES), body


async def _kept(runtime: Runtime, key: ApiKey | None, request_id: str) -> Task:
    """The task, unless it ended more than the retention time ago (then: unknown, like Segmind)."""
    task = await common.get(runtime, key, request_id)
    if task.finished_at and utcnow() - task.finished_at > timedelta(seconds=RESULT_RETENTION_S):
        raise NotFound(f"request {request_id} not found or expired (results are kept for 1 hour)")
    return task


def _json(body: dict) -> JSONResponse:
    return JSONResponse(body, status_code=FAILED_HTTP if body["status"] == "FAILED" else 200)


@router.post("/v2/{slug}", response_model=None,
             openapi_extra=openapi.merge(openapi.json_body("segmind", InfiniteTalkRequest),
                                         openapi.fixed_path(slug=list(MODELS))),
             responses=openapi.answers("segmind", {200: ("Queued: poll status_url, then read response_url",
                                                         SubmitAnswer), **ERRORS}))
async def submit_v2(slug: str, request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """Queue a request; answers request_id, status_url and response_url."""
    task, _ = await _submit(slug, request, runtime, key, base_url)
    return submitted(task, base_url)


@router.get("/v2/requests/{request_id}/status", response_model=None, responses=openapi.answers("segmind", {
    200: ("QUEUED, PROCESSING or COMPLETED", StatusAnswer), 422: ("FAILED, with the error", StatusAnswer), **ERRORS}))
async def request_status(request_id: str, runtime: RuntimeDep, key: KeyDep) -> JSONResponse:
    """QUEUED | PROCESSING | COMPLETED | FAILED (422, with the error)."""
    task = await _kept(runtime, key, request_id)
    return _json(status_body(task))


@router.get("/v2/requests/{request_id}", response_model=None, responses=openapi.answers("segmind", {
    200: ("The final response body", ResultAnswer), 422: ("FAILED, with the error", ResultAnswer), **ERRORS}))
async def request_result(request_id: str, runtime: RuntimeDep, key: KeyDep) -> JSONResponse:
    """The final body: status, output (the video URL) and metrics."""
    task = await _kept(runtime, key, request_id)
    return _json(result_body(task, common.view(runtime, task)))


@router.post("/v1/{slug}", response_model=None,
             openapi_extra=openapi.merge(openapi.json_body("segmind", InfiniteTalkRequest),
                                         openapi.fixed_path(slug=list(MODELS))),
             responses=openapi.answers("segmind", {
                 200: ("The video: the MP4 itself, or `{video: <base64>}` when `base64` is true", {
                     "video/mp4": {"schema": {"type": "string", "format": "binary"}},
                     "application/json": {"schema": openapi.ref("segmind", Base64Video)}}),
                 **ERRORS,
                 400: ("Bad Request, or the video could not be made from these inputs", ErrorAnswer),
                 500: ("The video could not be made through a fault of ours", ErrorAnswer),
                 504: ("Timeout: still running after the server's longest wait; poll /v2/requests/{id}/status",
                       ErrorAnswer)}))
async def run_sync(slug: str, request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> Response:
    """Run and answer with the video itself (or ``{"video": <base64>}`` when ``base64`` is true)."""
    task, body = await _submit(slug, request, runtime, key, base_url)
    task = await common.wait(request, runtime, key, task.id, runtime.settings.max_wait_s)
    if not task.state.terminal:
        return JSONResponse({"error": f"Timeout: still running after {runtime.settings.max_wait_s} s; poll "
                                      f"{base_url}/v2/requests/{task.id}/status"}, status_code=504)
    if task.state is not TaskStatus.SUCCEEDED:
        caller = common.failure_label(task) in ("BadRequest", "NoFaceDetected", "SensitiveContent", "PromptInvalid")
        return JSONResponse({"error": error_text(task)}, status_code=400 if caller else 500)
    name = next(iter(task.outputs or {"video.mp4": {}}))
    output = contextlib.ExitStack()  # with S3 storage, a local copy that goes once the answer is sent
    path = await run_in_threadpool(output.enter_context, runtime.storage.local_output(task.id, name))
    if body.base64:
        try:
            encoded = await run_in_threadpool(lambda: base64.b64encode(path.read_bytes()).decode())
        finally:
            await run_in_threadpool(output.close)
        return JSONResponse({"video": encoded, "request_id": task.id})
    return FileResponse(path, media_type="video/mp4", filename=name, headers={"X-Request-Id": task.id},
                        background=BackgroundTask(output.close))
