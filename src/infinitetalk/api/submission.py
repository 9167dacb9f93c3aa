"""Read request bodies, always after the caller's key was checked: JSON (capped while it streams), or
multipart with files (each file becomes an upload ref). No route declares a FastAPI body parameter, since
FastAPI reads those before any dependency runs, key checks included."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from infinitetalk.errors import InputTooLarge, InvalidRequest, UnsupportedMediaType
from infinitetalk.runtime.server import Runtime
from infinitetalk.schema import limits
from infinitetalk.tasks.models import ApiKey
from infinitetalk.tasks.service import request_hash

#: The file fields of a submit, each with its own cap, held while the field streams in (``read_form``).
FILE_FIELDS = {"image": limits.MAX_IMAGE_BYTES, "video": limits.MAX_VIDEO_BYTES, "audio": limits.MAX_AUDIO_BYTES,
               "mask": limits.MAX_IMAGE_BYTES}
LIST_FIELDS = ("audio", "mask")
_CHUNK = 1 << 20


def file_chunks(upload: UploadFile, digest: hashlib._Hash | None = None) -> Iterator[bytes]:
    """A spooled form file's bytes, a chunk at a time (hashed on the way when ``digest`` is given)."""
    upload.file.seek(0)
    while chunk := upload.file.read(_CHUNK):
        if digest is not None:
            digest.update(chunk)
        yield chunk


async def read_json(request: Request) -> dict:
    if _no_body(request):  # nothing to read, nothing a page could send: the plain 400, whatever its type
        raise InvalidRequest("the body is empty; send a JSON object with 'Content-Type: application/json'")
    _need_json_type(request.headers.get("content-type", ""))
    cap = request.app.state.runtime.settings.max_json_body_bytes
    too_large = InputTooLarge(f"the JSON body is over {cap // 2**20} MiB; send large files as uploads or URLs")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise too_large
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object")
    return payload


def _no_body(request: Request) -> bool:
    headers = request.headers
    return headers.get("content-length", "0" if "transfer-encoding" not in headers else "") == "0"


def _need_json_type(content_type: str) -> None:
    """A JSON body must say so. The types a web page may send to another site without asking it first
    (text/plain, forms, none at all) are refused, so a JSON body is never a cross-site "simple" request."""
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        sent = f"'{media_type}'" if media_type else "none"
        raise UnsupportedMediaType(f"send the JSON body with 'Content-Type: application/json' (this request had "
                                   f"{sent}); files go as multipart/form-data")


async def read_multipart(request: Request, runtime: Runtime, key: ApiKey | None,
                         made: list[str] | None = None) -> tuple[dict, str]:
    """Files go to uploads (their refs into the payload, their ids into ``made``); text fields are values,
    `request` a JSON object. Also the form's hash for Idempotency-Key: each file by its bytes, since the upload
    ids in the payload are new on every submit."""
    form = await read_form(request)
    payload: dict = {}
    hashed: list[tuple[str, str]] = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in FILE_FIELDS:
                    raise InvalidRequest(f"{name}: files are accepted for {', '.join(FILE_FIELDS)}", field=name)
                digest = hashlib.sha256()
                upload = await run_in_threadpool(
                    runtime.uploads.save, key_id=key.id if key else None, filename=value.filename or name,
                    chunks=file_chunks(value, digest), cap=FILE_FIELDS[name], field=name, size_hint=value.size,
                )
                ref, hashed_value = f"upload://{upload.id}", digest.hexdigest()
                if made is not None:
                    made.append(upload.id)
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


async def read_form(request: Request, caps: Mapping[str, int] = FILE_FIELDS) -> FormData:
    """The multipart form (files spooled to disk by Starlette), its body capped by the BodyLimit middleware and
    each file field named in ``caps`` by its own cap as it streams."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("send the file as multipart/form-data")
    parser = _FieldCappedParser(request.headers, request.stream(), max_files=8, max_fields=32, caps=caps)
    try:
        return await parser.parse()
    except MultiPartException as exc:  # Starlette's own words for a malformed form
        raise InvalidRequest(f"the multipart body could not be read ({exc.message})") from None


class _FieldCappedParser(MultiPartParser):
    """Starlette's multipart parser (1.x), with each file field held to its cap while its bytes arrive.
    Starlette caps only the text parts (``max_part_size``); a file part was counted only once the whole form,
    up to the request's cap (~830 MB), had been read and spooled. The parse stops at the byte that passes the
    cap, and Starlette closes what it had spooled."""

    def __init__(self, *args: object, caps: Mapping[str, int], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._caps, self._part_bytes = caps, 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self._part_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        cap = self._caps.get(part.field_name) if part.file is not None else None
        if cap is not None:
            self._part_bytes += end - start
            if self._part_bytes > cap:
                raise InputTooLarge(f"{part.field_name}: files up to {cap // 2**20} MiB are accepted",
                                    field=part.field_name)
        super().on_part_data(data, start, end)


async def form_file(request: Request, name: str) -> UploadFile:
    """The one file field ``name`` of a multipart body; close it when done."""
    form = await read_form(request)
    file = form.get(name)
    if not isinstance(file, UploadFile):
        await form.close()
        raise InvalidRequest(f"{name}: send the file as the multipart field '{name}'", field=name)
    return file


async def read_submission(request: Request, runtime: Runtime, key: ApiKey | None,
                          made: list[str] | None = None) -> tuple[dict, str | None]:
    """A submit's body and, for a multipart form, its hash; a JSON body's hash is the task service's own
    (``request_hash`` of the payload), so it has none here. A form's files become uploads, their ids into
    ``made`` (see drop_uploads)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await read_multipart(request, runtime, key, made)
    return await read_json(request), None


async def drop_uploads(runtime: Runtime, made: list[str]) -> None:
    """Delete the uploads a form's files became, once the submit is done with them, whatever its outcome: the
    task has its own copies of its inputs, so they never count against the key's upload quota afterwards."""
    def drop() -> None:
        for upload_id in made:
            runtime.uploads.discard(upload_id)

    if made:
        await run_in_threadpool(drop)  # one thread for them all: it finishes even if the request is cancelled
