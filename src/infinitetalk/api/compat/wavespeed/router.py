"""WaveSpeed-compatible routes: ``POST /api/v3/wavespeed-ai/infinitetalk[/video-to-video|/multi]``, the fast
family ``.../infinitetalk-fast[/multi|/video-to-video-multi]`` (our 4-step sampling, at the fast rate),
``GET /api/v3/predictions/{id}/result``, and the media uploads its SDK's ``Client.upload`` uses."""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.compat import common, openapi
from infinitetalk.api.compat.wavespeed.protocol import (
    ERRORS,
    MAX_UPLOAD_BYTES,
    MIN_BILLED_SECONDS,
    MODELS,
    NAMES,
    REQUESTS,
    BinaryUploadAnswer,
    PredictionAnswer,
    UploadedAnswer,
    UploadTicketAnswer,
    UploadTicketRequest,
    envelope,
    is_fast,
    prediction,
)
from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.api.submission import file_chunks, form_file
from infinitetalk.errors import InfiniteTalkError, InputTooLarge, NotFound


def _error_body(exc: InfiniteTalkError, status: int) -> dict:
    return envelope(None, code=status, message=exc.message)


render_error = common.error_renderer(_error_body)


router = APIRouter(prefix="/api/v3", tags=["compat: WaveSpeed"], route_class=common.translating_route(render_error))


@router.post("/media/uploads", response_model=None, openapi_extra=openapi.json_body("wavespeed", UploadTicketRequest),
             responses=openapi.answers("wavespeed", {200: ("Where to PUT the file's bytes", UploadTicketAnswer),
                                                     **ERRORS}))
async def upload_ticket(request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """Step 1 of ``Client.upload``: make an empty upload and say where to PUT its bytes."""
    body = await common.read_body(request, UploadTicketRequest)
    if body.size is not None and body.size > MAX_UPLOAD_BYTES:
        raise InputTooLarge(f"size: files up to {MAX_UPLOAD_BYTES // 2**20} MB are accepted", field="size")
    upload = await run_in_threadpool(runtime.uploads.create, key_id=key.id if key else None,
                                     filename=body.filename, size_hint=max(0, body.size or 0))
    # the upload id (128 random bits) is the PUT's permission, as a presigned URL's signature would be
    upload_instruction = {"method": "PUT", "url": f"{base_url}/api/v3/media/uploads/{upload.id}",
                          "headers": {"Content-Type": body.content_type or "application/octet-stream"}}
    return envelope({"upload": upload_instruction, "download_url": f"{base_url}/v1/uploads/{upload.id}",
                     "expires_at": upload.expires_at.replace(tzinfo=UTC).isoformat()})


@router.put("/media/uploads/{upload_id}", response_model=None, openapi_extra={"requestBody": {
    "required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
    responses=openapi.answers("wavespeed", {200: ("The file is stored", UploadedAnswer), **ERRORS}))
async def upload_bytes(upload_id: str, request: Request, runtime: RuntimeDep) -> dict:
    """Step 2: the file's bytes, once, into the upload made in step 1 (its unguessable id is the permission,
    as a presigned URL's signature would be, so this route takes no key). The bytes count against the key's
    upload quota as they arrive; a PUT refused (429 past the quota) or cut short leaves nothing, the upload
    included: ask for a new one."""
    upload = await run_in_threadpool(runtime.uploads.claim, upload_id)
    upload = await runtime.uploads.write_stream(upload, request.stream(), cap=MAX_UPLOAD_BYTES)
    return envelope({"size": upload.size})


@router.post("/media/upload/binary", response_model=None, openapi_extra={"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                                       "required": ["file"]}}}}},
    responses=openapi.answers("wavespeed", {200: ("The file is stored; use download_url as an input",
                                                  BinaryUploadAnswer), **ERRORS}))
async def upload_binary(request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """The older one-step upload (multipart ``file``)."""
    file = await form_file(request, "file")
    try:
        upload = await run_in_threadpool(runtime.uploads.save, key_id=key.id if key else None,
                                         filename=file.filename or "upload", chunks=file_chunks(file),
                                         cap=MAX_UPLOAD_BYTES, field="file", size_hint=file.size)
    finally:
        await file.close()
    return envelope({"type": "file", "download_url": f"{base_url}/v1/uploads/{upload.id}",
                     "filename": upload.filename, "size": upload.size})


@router.get("/predictions/{prediction_id}/result", response_model=None,
            responses=openapi.answers("wavespeed", {200: ("The prediction as it is now", PredictionAnswer), **ERRORS}))
async def result(prediction_id: str, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """The prediction as it is now: status created | processing | completed | failed, outputs when completed."""
    task = await common.get(runtime, key, prediction_id)
    return envelope(prediction(task, common.view(runtime, task), base_url))


@router.post("/{model:path}", response_model=None,
             openapi_extra=openapi.fixed_path(model={path: openapi.json_body("wavespeed", request)
                                                     for path, request in REQUESTS.items()}),
             responses=openapi.answers("wavespeed", {200: ("The prediction (ended, with enable_sync_mode)",
                                                           PredictionAnswer), **ERRORS}))
async def submit(model: str, request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """Submit to a model path; with ``enable_sync_mode`` the answer waits for the end of the task."""
    if model not in MODELS:
        raise NotFound(f"model {model} not found; available: {', '.join(MODELS)}")
    body = await common.read_body(request, MODELS[model])
    task = await common.submit(runtime, key, body.to_payload(fast=is_fast(model)), base_url, names=NAMES,
                               min_billed_seconds=MIN_BILLED_SECONDS)
    if body.enable_sync_mode:
        task = await common.wait(request, runtime, key, task.id, runtime.settings.max_wait_s)
    data = prediction(task, common.view(runtime, task), base_url)
    if body.enable_sync_mode and not task.state.terminal:
        data["error"] = f"Sync mode timed out after {runtime.settings.max_wait_s} s; the task is still running"
    return envelope(data)
