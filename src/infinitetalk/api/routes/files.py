"""Uploads (inputs) and signed output downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile
from fastapi.responses import FileResponse

from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.api.errors import ERROR_RESPONSES
from infinitetalk.errors import InputTooLarge
from infinitetalk.schema import limits
from infinitetalk.tasks.schemas import UploadPublic
from infinitetalk.tasks.staging import save_upload

router = APIRouter(prefix="/v1", tags=["files"], responses=ERROR_RESPONSES)

_MAX_UPLOAD = max(limits.MAX_AUDIO_BYTES, limits.MAX_IMAGE_BYTES, limits.MAX_VIDEO_BYTES)


def _chunks(upload: UploadFile):  # noqa: ANN202 - a generator of bytes
    upload.file.seek(0)
    while chunk := upload.file.read(1 << 20):
        yield chunk


@router.post("/uploads", status_code=201, response_model=UploadPublic)
def create_upload(file: Annotated[UploadFile, File(description="An image, video, audio or mask file.")],
                  runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> UploadPublic:
    """Upload an input file; its URL works as a media reference in POST /v1/tasks."""
    if file.size is not None and file.size > _MAX_UPLOAD:
        raise InputTooLarge(f"file: over {_MAX_UPLOAD // 2**20} MiB", field="file")
    upload = save_upload(runtime.storage, runtime.settings, key_id=key.id if key else None,
                         filename=file.filename or "file", data_chunks=_chunks(file))
    return UploadPublic(id=upload.id, url=f"{base_url}/v1/uploads/{upload.id}", filename=upload.filename,
                        bytes=upload.size, expires_at=upload.expires_at)


@router.get("/files/{task_id}/{name}", response_class=FileResponse,
            responses={200: {"content": {"video/mp4": {}}}, 410: {"description": "The output has expired."}})
def download(task_id: str, name: str, runtime: RuntimeDep, expires: Annotated[int, Query()],
             sig: Annotated[str, Query()]) -> FileResponse:
    """An output file, by its signed URL (no key needed; the signature is the permission)."""
    path = runtime.storage.open_signed(task_id, name, expires=expires, sig=sig)
    return FileResponse(path, media_type="video/mp4", filename=name)
