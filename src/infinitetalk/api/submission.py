"""Read a POST /v1/tasks body: JSON, or multipart with files (each file becomes an upload ref)."""

from __future__ import annotations

import hashlib
import json

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.schema import limits
from infinitetalk.tasks.models import ApiKey
from infinitetalk.tasks.runtime import Runtime
from infinitetalk.tasks.service import request_hash
from infinitetalk.tasks.staging import save_upload

FILE_FIELDS = {"image": limits.MAX_IMAGE_BYTES, "video": limits.MAX_VIDEO_BYTES, "audio": limits.MAX_AUDIO_BYTES,
               "mask": limits.MAX_IMAGE_BYTES}
LIST_FIELDS = ("audio", "mask")
_CHUNK = 1 << 20


def _chunks(upload: UploadFile, digest: hashlib._Hash):  # noqa: ANN202 - a generator of bytes
    upload.file.seek(0)
    while chunk := upload.file.read(_CHUNK):
        digest.update(chunk)
        yield chunk


async def read_json(request: Request) -> tuple[dict, str]:
    try:
        payload = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    return payload, request_hash(payload)


async def read_multipart(request: Request, runtime: Runtime, key: ApiKey | None) -> tuple[dict, str]:
    """Files go to uploads (their refs into the payload); text fields are values, `request` a JSON object."""
    form = await request.form()
    payload: dict = {}
    hashed: list[tuple[str, str]] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in FILE_FIELDS:
                    raise InvalidRequest(f"{name}: files are accepted for {', '.join(FILE_FIELDS)}", field=name)
                if value.size is not None and value.size > FILE_FIELDS[name]:
                    raise InputTooLarge(f"{name}: the file is over {FILE_FIELDS[name] // 2**20} MiB", field=name)
                digest = hashlib.sha256()
                upload = await run_in_threadpool(
                    save_upload, runtime.storage, runtime.settings, key_id=key.id if key else None,
                    filename=value.filename or name, data_chunks=_chunks(value, digest),
                )
                ref, hashed_value = f"upload://{upload.id}", digest.hexdigest()
            elif name == "request":
                try:
                    extra = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise InvalidRequest(f"request: not valid JSON ({exc})", field="request") from None
                if not isinstance(extra, dict):
                    raise InvalidRequest("request: must be a JSON object", field="request")
                payload.update(extra)
                hashed.append((name, request_hash(extra)))
                continue
            else:
                ref = hashed_value = value
            hashed.append((name, hashed_value))
            if name in LIST_FIELDS:
                payload.setdefault(name, []).append(ref)
            else:
                payload[name] = ref
    finally:
        await form.close()
    return payload, hashlib.sha256(json.dumps(sorted(hashed)).encode()).hexdigest()


async def read_submission(request: Request, runtime: Runtime, key: ApiKey | None) -> tuple[dict, str]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await read_multipart(request, runtime, key)
    return await read_json(request)
