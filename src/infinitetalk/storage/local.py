"""Local directory storage with HMAC-signed, expiring output URLs.

Layout under ``data_dir``: ``inputs/<task>/`` (deleted when the task ends), ``uploads/<id>/data``,
``outputs/<task>/<name>`` (deleted by the retention sweep once expired). Every name that reaches a path is one
we made (ids, ``video.mp4``) and is checked again here: a caller's file name never becomes a path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import shutil
import time
import urllib.parse
from pathlib import Path

from infinitetalk.config import Settings
from infinitetalk.tasks.errors import Gone, NotFound

#: A name we made: letters, digits, '_', '-' and inner dots; never '.', '..' or a hidden file.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")


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

    def delete_outputs(self, task_id: str) -> None:
        shutil.rmtree(self.root / "outputs" / task_id, ignore_errors=True)

    # --- signed URLs ---
    def _sign(self, task_id: str, name: str, expires: int) -> str:
        message = f"{task_id}/{name}/{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def signed_url(self, base_url: str, task_id: str, name: str, expires: int) -> str:
        query = urllib.parse.urlencode({"expires": expires, "sig": self._sign(task_id, name, expires)})
        return f"{base_url.rstrip('/')}/v1/files/{task_id}/{name}?{query}"

    def open_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> Path:
        """The file a signed URL names, or NotFound (bad signature / no file) / Gone (expired)."""
        if not (_SAFE_NAME.match(task_id) and _SAFE_NAME.match(name)):
            raise NotFound("no such file")
        # bytes, not str: compare_digest refuses non-ASCII text with a TypeError
        if not hmac.compare_digest(self._sign(task_id, name, expires).encode(), sig.encode("utf-8", "replace")):
            raise NotFound("no such file (the link's signature does not match)")
        path = self.output_path(task_id, name)
        if expires < time.time() or not path.is_file():
            raise Gone("this output has expired and was deleted; outputs are kept for a limited time")
        return path
