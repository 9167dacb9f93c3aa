"""The one interface every storage keeps, and what the implementations share.

A task's files move through storage in three ways, and the interface is shaped by them, not by any one backend:

- inputs: the API process stages them into a local folder (``input_dir``), then ``store_inputs`` keeps them under
  the task; the worker that runs it asks ``open_inputs`` for a local folder holding them (the same folder on one
  machine, a fresh download on another). Requests name their inputs relative to that folder.
- outputs: a worker renders into a local file (``output_path``), then ``store_output`` makes it the task's output.
  Callers get a link to the API's own file route, which storage signs (``sign``: which file, until when) and the
  API builds (``tasks.views.file_url``); ``open_signed`` checks it and answers with a local file to send or a URL
  (presigned, no longer-lived than ours) to redirect to.
- uploads: written once (``new_upload``: the bytes go to a local file, then ``commit``), read by whichever API
  process stages the task that uses them (``copy_upload``).

The retention sweep (``delete_expired``) deletes outputs and uploads past their TTL, and a dead process's local
leftovers. Names that reach a path or a key are ours (task and upload ids, ``video.mp4``) and are checked again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from infinitetalk.errors import Gone, NotFound

#: A name we made: letters, digits, '_', '-' and inner dots; never '.', '..' or a hidden file.
SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Streamed:
    """An output the API sends itself from a store clients cannot reach (S3 with INFINITETALK_S3_LINKS=proxy):
    ``open(range_header)`` asks the store for it, or for the byte range a player asked for, and gives the HTTP
    status (200 or 206), the headers and the body's chunks."""

    open: Callable[[str | None], tuple[int, dict[str, str], Iterator[bytes]]]


#: What a valid signed output URL leads to: a local file to send, a URL to redirect the caller to, or a stream.
Download = Path | str | Streamed


class PendingFile(Protocol):
    """A file being written: bytes go to ``file``; ``commit`` makes it whole in storage at once, ``discard``
    leaves nothing. Exactly one of them is called."""

    file: BinaryIO

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class Storage(Protocol):
    #: The local folder this process writes in: staged inputs, renders and their partial files.
    root: Path
    #: Other machines see what is stored (S3): a task's files must be pushed there, not only written locally.
    shared: bool

    # --- a task's inputs ---
    def input_dir(self, task_id: str) -> Path:
        """The local folder the API stages a task's inputs into."""
        ...

    def store_inputs(self, task_id: str) -> None:
        """Keep what was staged in ``input_dir`` for the worker that will run the task (before the task row
        exists: a worker may take it the moment it commits)."""
        ...

    def open_inputs(self, task_id: str) -> Path:
        """A local folder holding the task's stored inputs. FileNotFoundError when they are gone."""
        ...

    def delete_inputs(self, task_id: str) -> None:
        """Forget the task's inputs, stored and local. Never raises: what it cannot delete is logged."""
        ...

    # --- a task's outputs ---
    def output_path(self, task_id: str, name: str = "video.mp4") -> Path:
        """The local file a render writes."""
        ...

    def store_output(self, task_id: str, path: Path, *, keep: bool = False) -> None:
        """Make the rendered ``path`` the task's output of the same name. Shared storage then deletes the local
        file, unless ``keep`` (a render's segments and checkpoint, which it reads again)."""
        ...

    def delete_output(self, task_id: str, name: str) -> None:
        """Forget one stored output (a render's checkpoint once the task ended). Never raises."""
        ...

    def local_output(self, task_id: str, name: str) -> AbstractContextManager[Path]:
        """A stored output as a local file, for as long as the block runs. FileNotFoundError when it is gone."""
        ...

    def sign(self, task_id: str, name: str, expires: int) -> str:
        """The signature of a link to the output ``name`` that lasts until ``expires`` (Unix seconds): the same
        on every process that shares the storage, and across restarts."""
        ...

    def check_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> None:
        """NotFound (bad name or signature) or Gone (expired) unless a signed URL is valid; no file needed (the
        live preview's playlist is made on request)."""
        ...

    def open_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> Download:
        """What a signed URL leads to, or NotFound (bad signature) / Gone (expired or deleted)."""
        ...

    # --- uploads ---
    def new_upload(self, upload_id: str) -> PendingFile: ...

    def copy_upload(self, upload_id: str, target: Path) -> None:
        """Copy an upload's bytes to the local file ``target``. FileNotFoundError when there are none."""
        ...

    def delete_upload(self, upload_id: str) -> None: ...

    # --- retention ---
    def delete_expired(self, *, output_ttl_s: float, upload_ttl_s: float, stale_s: float, now: float,
                       preview_grace_s: float | None = None) -> tuple[int, int]:
        """Delete outputs older than ``output_ttl_s`` and uploads older than ``upload_ttl_s``, and local files
        a dead process left more than ``stale_s`` ago; with ``preview_grace_s``, a finished task's preview
        segments that long after its video was stored. Returns (output files, uploads) deleted."""
        ...


class OutputMirror:
    """A task's render work folder kept among its stored outputs, so another machine can resume the render
    (``workers.checkpoint.Mirror``)."""

    def __init__(self, storage: Storage, task_id: str) -> None:
        self.storage, self.task_id = storage, task_id

    def push(self, path: Path) -> None:
        self.storage.store_output(self.task_id, path, keep=True)

    def pull(self, name: str, target: Path) -> bool:
        try:
            with self.storage.local_output(self.task_id, name) as stored:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(stored, target)
        except FileNotFoundError:
            return False
        return True

    def remove(self, names: list[str]) -> None:
        for name in names:
            self.storage.delete_output(self.task_id, name)


#: What an output's bytes are, by its name's extension (mimetypes thinks .ts is a Qt translation file).
_CONTENT_TYPES = {".mp4": "video/mp4", ".ts": "video/mp2t", ".m3u8": "application/vnd.apple.mpegurl"}


def check_reachable(storage: Storage) -> None:
    """Raise when ``storage`` cannot be used now (for /readyz): a bucket must answer a HEAD request, the
    cheapest call that proves the endpoint, the credentials and the bucket; a local folder must exist."""
    client = getattr(storage, "client", None)  # S3Storage's boto3 client; local storage has none
    if client is not None:
        client.head_bucket(Bucket=storage.bucket)  # type: ignore[attr-defined] - S3Storage's
    elif not storage.root.is_dir():
        raise FileNotFoundError("the data folder is gone")


def content_type(name: str) -> str:
    return _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


#: A finished task's video, and the live preview's segments it makes redundant (``preview_grace_s`` after it).
VIDEO_SUFFIX, SEGMENT_SUFFIX = ".mp4", ".ts"


def preview_segment(name: str) -> bool:
    return name.endswith(SEGMENT_SUFFIX) and not name.startswith(".")


def missing_output(name: str) -> Gone:
    """What a valid URL of an output that is no longer stored answers."""
    if preview_segment(name):
        return Gone("this live-preview segment was deleted a few minutes after the task's video was finished; "
                    "download the video from the task's outputs instead")
    return Gone("this output has expired and was deleted; outputs are kept for a limited time")


def check_signed(key: bytes, task_id: str, name: str, expires: int, sig: str) -> None:
    """The checks every signed URL passes: our names only, our signature, not expired."""
    if not (SAFE_NAME.match(task_id) and SAFE_NAME.match(name)):
        raise NotFound("no such file")
    if not signature_matches(key, task_id, name, expires, sig):
        raise NotFound("no such file (the link's signature does not match)")
    if expires < time.time():
        raise Gone("this output has expired and was deleted; outputs are kept for a limited time")


def sign(key: bytes, task_id: str, name: str, expires: int) -> str:
    """The signature of an output URL: who may fetch which file until when."""
    return hmac.new(key, f"{task_id}/{name}/{expires}".encode(), hashlib.sha256).hexdigest()[:32]


def signature_matches(key: bytes, task_id: str, name: str, expires: int, sig: str) -> bool:
    # bytes, not str: compare_digest refuses non-ASCII text with a TypeError
    return hmac.compare_digest(sign(key, task_id, name, expires).encode(), sig.encode("utf-8", "replace"))
