"""Bring a caller's inputs into a task's input folder before the task is accepted.

Fetching at submit is what lets us probe the audio's real length (the price) and refuse bad inputs with
a 400 before anything is stored or billed. Refs may be http(s) URLs (SSRF-guarded), data: URIs, or our
own uploads (``upload://<id>`` or this server's ``/v1/uploads/<id>`` URL); never paths on our disk.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError, InvalidRequest
from infinitetalk.media.audio import probe_duration
from infinitetalk.media.fetch import fetch_to_file
from infinitetalk.schema import GenerationRequest
from infinitetalk.storage import LocalStorage

_UPLOAD_REF = re.compile(r"^(?:upload://|.*/v1/uploads/)(upl_[A-Za-z0-9_-]{8,64})$")
_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Upload:
    id: str
    filename: str
    size: int
    expires_at: datetime


def save_upload(storage: LocalStorage, settings: Settings, *, key_id: str | None, filename: str,
                data_chunks: object) -> Upload:
    """Write an uploaded file (an iterable of byte chunks) under uploads/<id>/, remembering its owner."""
    upload_id = "upl_" + secrets.token_urlsafe(16)
    folder = storage.upload_dir(upload_id)
    folder.mkdir(parents=True)
    name = _SAFE_FILENAME.sub("_", Path(filename or "file").name)[-100:] or "file"
    size = 0
    with open(folder / name, "wb") as out:
        for chunk in data_chunks:  # type: ignore[attr-defined]
            size += len(chunk)
            out.write(chunk)
    (folder / ".owner").write_text(json.dumps({"key_id": key_id}))
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.upload_ttl_s)
    return Upload(id=upload_id, filename=name, size=size, expires_at=expires_at)


def _from_upload(upload_id: str, dest_dir: Path, *, key_id: str | None, storage: LocalStorage, field: str) -> Path:
    folder = storage.upload_dir(upload_id)
    owner = folder / ".owner"
    if not owner.is_file() or json.loads(owner.read_text()).get("key_id") != key_id:
        raise InvalidRequest(f"{field}: no upload {upload_id} (it expired, or another key made it)", field=field)
    source = next(path for path in folder.iterdir() if path.name != ".owner")
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / f"{field.replace('.', '_')}-{source.name}"
    shutil.copyfile(source, target)
    return target


def fetch_ref(ref: str, dest_dir: Path, *, kind: str, field: str, key_id: str | None,
              storage: LocalStorage, settings: Settings) -> Path:
    match = _UPLOAD_REF.match(ref)
    try:
        if match:
            return _from_upload(match.group(1), dest_dir, key_id=key_id, storage=storage, field=field)
        sub = dest_dir / field.replace(".", "_")  # one folder per field so names never collide
        return fetch_to_file(ref, sub, kind=kind, settings=settings, field=field)
    except InfiniteTalkError as exc:
        exc.field = exc.field or field
        raise


def stage_audio(refs: list[str], dest_dir: Path, *, key_id: str | None, storage: LocalStorage,
                settings: Settings) -> tuple[list[str], list[float]]:
    paths, durations = [], []
    for index, ref in enumerate(refs):
        field = f"audio.{index}" if len(refs) > 1 else "audio"
        path = fetch_ref(ref, dest_dir, kind="audio", field=field, key_id=key_id, storage=storage, settings=settings)
        durations.append(probe_duration(path, field=field))
        paths.append(str(path))
    return paths, durations


def stage(request: GenerationRequest, dest_dir: Path, *, key_id: str | None, storage: LocalStorage,
          settings: Settings) -> tuple[GenerationRequest, list[float]]:
    """Fetch every input of ``request``; return the request pointing at the local copies, and audio lengths."""
    audio, durations = stage_audio(request.audio, dest_dir, key_id=key_id, storage=storage, settings=settings)
    update: dict = {"audio": audio}
    for name in ("image", "video"):
        ref = getattr(request, name)
        if ref:
            update[name] = str(fetch_ref(ref, dest_dir, kind="image" if name == "image" else "video", field=name,
                                         key_id=key_id, storage=storage, settings=settings))
    if request.mask:
        update["mask"] = [
            str(fetch_ref(ref, dest_dir, kind="image", field=f"mask.{i}", key_id=key_id, storage=storage,
                          settings=settings))
            for i, ref in enumerate(request.mask)
        ]
    return request.model_copy(update=update), durations


def shorten_data_uris(payload: dict) -> dict:
    """The request for display: data: URIs replaced by their size, so rows stay small."""
    def short(value: object) -> object:
        if isinstance(value, str) and value.startswith("data:"):
            return f"{value[:30]}...({len(value)} chars)"
        if isinstance(value, list):
            return [short(v) for v in value]
        return value
    return {key: short(value) for key, value in payload.items()}
