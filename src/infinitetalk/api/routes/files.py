"""Uploads (inputs) and signed output downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.api.errors import ERROR_RESPONSES
from infinitetalk.api.submission import file_chunks, form_file
from infinitetalk.render.checkpoint import PLAYLIST
from infinitetalk.schema import limits
from infinitetalk.storage.base import Streamed, content_type
from infinitetalk.tasks.hls import preview_playlist
from infinitetalk.tasks.models import Upload
from infinitetalk.tasks.schemas import HLS_PLAYLIST, UploadPublic

router = APIRouter(prefix="/v1", tags=["files"], responses=ERROR_RESPONSES)

_MAX_UPLOAD = max(limits.MAX_AUDIO_BYTES, limits.MAX_IMAGE_BYTES, limits.MAX_VIDEO_BYTES)


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "An image, video, audio or mask file."}}}}}}}


@router.post("/uploads", status_code=201, response_model=UploadPublic, openapi_extra=_UPLOAD_BODY)
async def create_upload(request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> UploadPublic:
    """Upload an input file; its id or URL works as a media reference in POST /v1/tasks, /v1/estimate and the
    provider-compatible routes."""
    file = await form_file(request, "file")
    try:
        upload = await run_in_threadpool(runtime.uploads.save, key_id=key.id if key else None,
                                         filename=file.filename, chunks=file_chunks(file), cap=_MAX_UPLOAD,
                                         field="file", size_hint=file.size)
    finally:
        await file.close()
    return _public(upload, base_url)


@router.get("/uploads/{upload_id}", response_model=UploadPublic)
def get_upload(upload_id: str, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> UploadPublic:
    """One of your uploads: the URL POST /v1/uploads answered. Its id, `upload://<id>` or this URL work as a
    media reference in every route (native and provider-compatible) and in POST /v1/estimate."""
    return _public(runtime.uploads.owned(upload_id, key_id=key.id if key else None), base_url)


def _public(upload: Upload, base_url: str) -> UploadPublic:
    return UploadPublic(id=upload.id, url=f"{base_url}/v1/uploads/{upload.id}", filename=upload.filename,
                        bytes=upload.size, expires_at=upload.expires_at)


@router.get("/files/{task_id}/{name}", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}, "video/mp2t": {}, HLS_PLAYLIST: {}}},
                       206: {"description": "The byte range asked for (Range), when the server streams outputs "
                                            "of its S3 storage itself (INFINITETALK_S3_LINKS=proxy)."},
                       307: {"description": "The file, at a presigned URL of the server's S3 storage that expires "
                                            "with this one."},
                       410: {"description": "The output has expired."}})
def download(request: Request, task_id: str, name: str, runtime: RuntimeDep, expires: Annotated[int, Query()],
             sig: Annotated[str, Query()]) -> Response:
    """An output file, by its signed URL (no key needed; the signature is the permission).

    `preview.m3u8` is the live HLS preview of a running task (hls.js, Safari, VLC, ffplay play it): the chunks
    finished so far, growing until the task ends, each segment at a link that expires with this one."""
    if name == PLAYLIST:
        runtime.storage.check_signed(task_id, name, expires=expires, sig=sig)
        text = preview_playlist(runtime.sessions, runtime.storage, runtime.settings, task_id, expires=expires)
        return Response(text, media_type=HLS_PLAYLIST, headers={"Cache-Control": "no-store"})
    target = runtime.storage.open_signed(task_id, name, expires=expires, sig=sig)
    if isinstance(target, Path):
        return FileResponse(target, media_type=content_type(name), filename=name)
    if isinstance(target, Streamed):  # a bucket clients cannot reach: its bytes pass through us
        status, headers, body = target.open(request.headers.get("range"))
        return StreamingResponse(body, status_code=status, headers=headers)
    # S3 storage: the bytes come from the bucket; our URL stays the one that answers 410 once it expires
    return RedirectResponse(target, status_code=307, headers={"Cache-Control": "no-store"})
