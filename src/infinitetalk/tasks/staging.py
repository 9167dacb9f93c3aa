"""Bring a caller's inputs into a task's input folder before the task is accepted.

Fetching at submit is what lets us probe the audio's real length (the price) and refuse bad inputs with
a 400 before anything is stored or billed. Refs may be http(s) URLs (SSRF-guarded), data: URIs, or our
own uploads (the id, ``upload://<id>`` or this server's ``/v1/uploads/<id>`` URL); never paths on our disk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError
from infinitetalk.media.audio import probe_duration
from infinitetalk.media.disk import disk_writes
from infinitetalk.media.fetch import MAX_BYTES, fetch_to_file
from infinitetalk.media.image import check_image
from infinitetalk.media.video import check_video
from infinitetalk.schema import GenerationRequest
from infinitetalk.tasks import faces
from infinitetalk.tasks.uploads import Uploads

#: An upload by its id alone, as ``upload://<id>``, or as the URL POST /v1/uploads answered (any host: behind
#: a proxy the caller may know us by another name). All three name the same file, for any route.
_UPLOAD_REF = re.compile(r"^(?:upload://|.*/v1/uploads/)?(upl_[A-Za-z0-9_-]{8,64})$")


def fetch_ref(ref: str, dest_dir: Path, *, kind: str, field: str, key_id: str | None,
              uploads: Uploads, settings: Settings) -> Path:
    match = _UPLOAD_REF.match(ref)
    try:
        with disk_writes(field):  # the upload's copy too: a full disk is storage_full, not a bare 500
            if match:
                return uploads.copy_to(match.group(1), dest_dir, key_id=key_id, field=field, cap=MAX_BYTES[kind])
            sub = dest_dir / field.replace(".", "_")  # one folder per field so names never collide
            return fetch_to_file(ref, sub, kind=kind, settings=settings, field=field)
    except InfiniteTalkError as exc:
        exc.field = exc.field or field
        raise


def stage_audio(refs: list[str], dest_dir: Path, *, key_id: str | None, uploads: Uploads,
                settings: Settings) -> tuple[list[str], list[float]]:
    paths, durations = [], []
    for index, ref in enumerate(refs):
        field = f"audio.{index}" if len(refs) > 1 else "audio"
        path = fetch_ref(ref, dest_dir, kind="audio", field=field, key_id=key_id, uploads=uploads, settings=settings)
        durations.append(probe_duration(path, field=field))  # decodes it all: the check and the price
        paths.append(str(path))
    return paths, durations


def stage(request: GenerationRequest, dest_dir: Path, *, key_id: str | None, uploads: Uploads,
          settings: Settings) -> tuple[GenerationRequest, list[float]]:
    """Fetch and decode-check every input of ``request``; return the request pointing at the local copies,
    and audio lengths.

    Every input is checked the way the audio always was: a file the render could not read is refused
    here, as a 400 naming its field, before the task exists or anything is charged; so is a picture without
    a face for each speaker (``settings.face_check``).
    """
    audio, durations = stage_audio(request.audio, dest_dir, key_id=key_id, uploads=uploads, settings=settings)
    update: dict = {"audio": audio}

    def image(ref: str, field: str, mode: str) -> str:
        path = fetch_ref(ref, dest_dir, kind="image", field=field, key_id=key_id, uploads=uploads, settings=settings)
        check_image(path, field=field, mode=mode)
        return str(path)

    if request.image:
        update["image"] = image(request.image, "image", "RGB")
    if request.video:
        path = fetch_ref(request.video, dest_dir, kind="video", field="video", key_id=key_id, uploads=uploads,
                         settings=settings)
        check_video(path, field="video")
        update["video"] = str(path)
    if request.mask:
        update["mask"] = [image(ref, f"mask.{i}", "L") for i, ref in enumerate(request.mask)]
    staged = request.model_copy(update=update)
    if settings.face_check:  # a face for each speaker, as the render will look for them (tasks.faces)
        faces.check_speaker_faces(staged)
    return staged, durations


def _with_paths(request: GenerationRequest, change: Callable[[str], str]) -> GenerationRequest:
    update: dict = {"audio": [change(ref) for ref in request.audio]}
    for name in ("image", "video"):
        if getattr(request, name):
            update[name] = change(getattr(request, name))
    if request.mask:
        update["mask"] = [change(ref) for ref in request.mask]
    return request.model_copy(update=update)


def relative_inputs(request: GenerationRequest, folder: Path) -> GenerationRequest:
    """A staged request as it is stored: each input named relative to the task's input folder, which a worker
    on another machine has somewhere else."""
    return _with_paths(request, lambda ref: Path(ref).relative_to(folder).as_posix())


def resolved_inputs(request: GenerationRequest, folder: Path) -> GenerationRequest:
    """A stored request with its inputs in ``folder`` (rows from before relative names hold absolute paths,
    which stay as they are)."""
    return _with_paths(request, lambda ref: str(folder / ref))


def shorten_data_uris(payload: dict) -> dict:
    """The request for display: data: URIs replaced by their size, so rows stay small."""
    def short(value: object) -> object:
        if isinstance(value, str) and value.startswith("data:"):
            return f"{value[:30]}...({len(value)} chars)"
        if isinstance(value, list):
            return [short(v) for v in value]
        return value
    return {key: short(value) for key, value in payload.items()}
