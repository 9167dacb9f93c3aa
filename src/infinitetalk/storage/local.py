"""Local directory storage with HMAC-signed, expiring output URLs: one machine, the default.

Layout under ``data_dir``: ``inputs/<task>/`` (deleted when the task ends), ``uploads/<id>/data``,
``outputs/<task>/<name>`` (deleted by the retention sweep once expired). Every name that reaches a path is one
we made (ids, ``video.mp4``) and is checked again here: a caller's file name never becomes a path.

The local folders are the stored files, so storing is a no-op: inputs are staged where the worker reads them
and a render writes its output in place (atomically: the MP4 writer renames a finished file into place).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from infinitetalk.config import Settings
from infinitetalk.errors import NotFound
from infinitetalk.storage.base import SAFE_NAME as _SAFE_NAME
from infinitetalk.storage.base import VIDEO_SUFFIX, check_signed, missing_output, preview_segment, sign


def _secret(settings: Settings) -> bytes:
    if settings.signing_secret:
        return settings.signing_secret.encode()
    # made once and kept, so URLs handed out before a restart stay valid after it
    path = settings.data_dir / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip().encode()


class LocalStorage:
    shared = False

    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir.resolve()
        self._key = _secret(settings)
        for name in ("inputs", "uploads", "outputs"):
            (self.root / name).mkdir(parents=True, exist_ok=True)

    # --- paths ---
    def input_dir(self, task_id: str) -> Path:
        return self.root / "inputs" / task_id

    def output_path(self, task_id: str, name: str = "video.mp4") -> Path:
        return self.root / "outputs" / task_id / name

    def upload_path(self, upload_id: str) -> Path:
        if not _SAFE_NAME.match(upload_id):
            raise NotFound("no such upload")
        return self.root / "uploads" / upload_id / "data"

    def delete_upload(self, upload_id: str) -> None:
        if _SAFE_NAME.match(upload_id):
            shutil.rmtree(self.root / "uploads" / upload_id, ignore_errors=True)

    def delete_inputs(self, task_id: str) -> None:
        shutil.rmtree(self.input_dir(task_id), ignore_errors=True)

    def delete_output(self, task_id: str, name: str) -> None:
        if _SAFE_NAME.match(task_id) and _SAFE_NAME.match(name):
            self.output_path(task_id, name).unlink(missing_ok=True)

    # --- storing is in place ---
    def store_inputs(self, task_id: str) -> None:
        """Nothing to do: the worker reads the folder they were staged in."""

    def open_inputs(self, task_id: str) -> Path:
        return self.input_dir(task_id)

    def store_output(self, task_id: str, path: Path, *, keep: bool = False) -> None:
        """Nothing to do: the render wrote ``output_path`` itself."""

    @contextlib.contextmanager
    def local_output(self, task_id: str, name: str) -> Iterator[Path]:
        path = self.output_path(task_id, name) if _SAFE_NAME.match(task_id) and _SAFE_NAME.match(name) else None
        if path is None or not path.is_file():
            raise FileNotFoundError(f"no output {name} of task {task_id}")
        yield path

    def new_upload(self, upload_id: str) -> _PartialFile:
        return _PartialFile(self.upload_path(upload_id))

    def copy_upload(self, upload_id: str, target: Path) -> None:
        shutil.copyfile(self.upload_path(upload_id), target)  # FileNotFoundError when it is gone

    def delete_expired(self, *, output_ttl_s: float, upload_ttl_s: float, stale_s: float, now: float,
                       preview_grace_s: float | None = None) -> tuple[int, int]:
        files = _expired_outputs(self.root / "outputs", output_ttl_s, stale_s, now, preview_grace_s)
        for path in files:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: another output in it is still fresh
                path.parent.rmdir()
        uploads = _older_than(self.root / "uploads", upload_ttl_s, now)
        for folder in uploads:
            shutil.rmtree(folder, ignore_errors=True)
        return len(files), len(uploads)

    # --- signed links (the API builds them: tasks.views.file_url) ---
    def sign(self, task_id: str, name: str, expires: int) -> str:
        return sign(self._key, task_id, name, expires)

    def check_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> None:
        check_signed(self._key, task_id, name, expires, sig)

    def open_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> Path:
        """The file a signed URL names, or NotFound (bad signature / no file) / Gone (expired)."""
        check_signed(self._key, task_id, name, expires, sig)
        path = self.output_path(task_id, name)
        if not path.is_file():
            raise missing_output(name)
        return path


class _PartialFile:
    """An upload's bytes written beside its final name and renamed into place only when all arrived."""

    def __init__(self, target: Path) -> None:
        # a name of its own: two PUTs racing on one upload must not write into one file
        self.target, self.partial = target, target.with_name(f".partial-{secrets.token_hex(8)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        self.file: BinaryIO = open(self.partial, "wb")  # noqa: SIM115 - closed by commit or discard

    def commit(self) -> None:
        self.file.close()
        try:
            os.replace(self.partial, self.target)
        except BaseException:
            self.partial.unlink(missing_ok=True)
            raise

    def discard(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


def _older_than(folder: Path, age_s: float, now: float) -> list[Path]:
    if not folder.is_dir():
        return []
    return [entry for entry in folder.iterdir() if entry.stat().st_mtime + age_s < now]


def _expired_outputs(outputs: Path, ttl_s: float, stale_s: float, now: float,
                     preview_grace_s: float | None) -> list[Path]:
    """A task's files once its newest is past the TTL, hidden partial files a dead process left behind, and
    (``preview_grace_s``) the preview segments of a task whose video was stored that long ago.

    A task's files go together: a long render's first segments are older than the TTL before it ends, and its
    checkpoint is rewritten with every chunk. The newest file's mtime is when the task ended (the encoder's last
    write, kept by the rename), which is when the TTL starts; a folder's own mtime is not, since a running task
    creates it at start.
    """
    found = []
    for folder in outputs.glob("*"):
        files = [path for path in folder.glob("*") if path.is_file()]
        partial = [path for path in files if path.name.startswith(".")]
        found += [path for path in partial if path.stat().st_mtime + stale_s < now]
        done = [path for path in files if not path.name.startswith(".")]
        if done and max(path.stat().st_mtime for path in done) + ttl_s < now:
            found += done
        elif preview_grace_s is not None and _video_older_than(done, preview_grace_s, now):
            found += [path for path in done if preview_segment(path.name)]
    return found


def _video_older_than(files: list[Path], age_s: float, now: float) -> bool:
    """Whether the task's video was stored ``age_s`` ago (its mtime: the encoder's last write, kept by the rename
    that stored it)."""
    return any(path.suffix == VIDEO_SUFFIX and path.stat().st_mtime + age_s < now for path in files)
