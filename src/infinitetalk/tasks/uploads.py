"""Uploaded input files: one row per upload (owner, the caller's file name, size, expiry), its bytes in
storage under the upload's own id. A caller's file name is only ever data; the disk sees our ids.

Two shapes: one step (multipart: the bytes come with the request) and two steps (WaveSpeed's SDK: a ticket
first, then a PUT of the bytes to the ticket's URL). Caps are counted while bytes stream in, and per-key
quotas (live uploads and their bytes) are checked before anything is written.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
from collections.abc import AsyncIterable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import BigInteger, cast, delete, func, select, update

from infinitetalk.config import Settings
from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.storage import Storage
from infinitetalk.storage.base import PendingFile
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.errors import Conflict, NotFound, TooManyRequests
from infinitetalk.tasks.models import Upload, utcnow

#: "upl_" + secrets.token_urlsafe(16): 128 random bits, which is also the two-step PUT's permission.
UPLOAD_ID = re.compile(r"^upl_[A-Za-z0-9_-]{22}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def clean_filename(name: str | None) -> str:
    """The caller's file name for display: its last part, plain characters, no leading dots, <= 100 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    return _UNSAFE.sub("_", base).lstrip(".")[-100:] or "file"


def _bytes_held():  # noqa: ANN202 - a SQL expression
    """The sum of upload sizes as an integer: PostgreSQL's SUM of a bigint is a numeric (a Decimal here)."""
    return cast(func.coalesce(func.sum(Upload.size), 0), BigInteger)


class Uploads:
    def __init__(self, *, sessions: SessionFactory, storage: Storage, settings: Settings) -> None:
        self.sessions, self.storage, self.settings = sessions, storage, settings

    # --- making one ---
    def create(self, *, key_id: str | None, filename: str | None, size_hint: int | None = None) -> Upload:
        """A row for a new upload, its bytes still to come; 429 when the key's quota is used up."""
        now = utcnow()
        upload = Upload(id="upl_" + secrets.token_urlsafe(16), api_key_id=key_id, filename=clean_filename(filename),
                        size=size_hint or 0, complete=False, created_at=now,
                        expires_at=now + timedelta(seconds=self.settings.upload_ttl_s))
        with self.sessions.begin() as session:
            self._check_quota(session, key_id, now, extra_bytes=size_hint or 0)
            session.add(upload)
        return upload

    def _check_quota(self, session, key_id: str | None, now: datetime, *, extra_bytes: int) -> None:  # noqa: ANN001
        owner = Upload.api_key_id.is_(None) if key_id is None else Upload.api_key_id == key_id
        count, used, oldest = session.execute(
            select(func.count(), _bytes_held(), func.min(Upload.expires_at))
            .where(owner, Upload.expires_at > now)
        ).one()
        max_count, max_bytes = self.settings.max_uploads_per_key, self.settings.max_upload_bytes_per_key
        if count < max_count and used + extra_bytes <= max_bytes:
            return
        wait = math.ceil((oldest - now).total_seconds()) if oldest else 60
        raise TooManyRequests(
            f"this key holds {count} uploads ({used // 2**20} MiB) that have not expired; the limit is {max_count} "
            f"uploads and {max_bytes // 2**20} MiB. Use uploads in tasks (they are freed when they expire) or send "
            "inputs as URLs", retry_after=wait, code="upload_quota_exceeded")

    def _budget(self, upload: Upload) -> int:
        """Bytes this upload may take before its key is over its stored-bytes quota."""
        now = utcnow()
        owner = Upload.api_key_id.is_(None) if upload.api_key_id is None else Upload.api_key_id == upload.api_key_id
        with self.sessions() as session:
            used = session.scalar(select(_bytes_held())
                                  .where(owner, Upload.expires_at > now, Upload.id != upload.id))
        return self.settings.max_upload_bytes_per_key - used

    def write(self, upload: Upload, chunks: Iterable[bytes], *, cap: int, field: str | None = None) -> Upload:
        """Stream ``chunks`` into the upload's file (whole or nothing), counting against ``cap`` and the quota."""
        sink = _Sink(self.storage.new_upload(upload.id), cap=cap, quota=self._budget(upload), field=field)
        try:
            for chunk in chunks:
                sink.add(chunk)
        except BaseException:
            sink.discard()
            raise
        sink.commit()
        return self._completed(upload, sink.size)

    async def write_stream(self, upload: Upload, chunks: AsyncIterable[bytes], *, cap: int) -> Upload:
        """``write`` for a request body read as it arrives (the two-step PUT)."""
        sink = _Sink(self.storage.new_upload(upload.id), cap=cap, quota=self._budget(upload), field=None)
        try:
            async for chunk in chunks:
                sink.add(chunk)
        except BaseException:
            sink.discard()
            raise
        await asyncio.to_thread(sink.commit)  # to S3 storage that is a transfer: not on the event loop
        return self._completed(upload, sink.size)

    def _completed(self, upload: Upload, size: int) -> Upload:
        with self.sessions.begin() as session:
            session.execute(update(Upload).where(Upload.id == upload.id).values(size=size, complete=True))
        upload.size, upload.complete = size, True
        return upload

    def save(self, *, key_id: str | None, filename: str | None, chunks: Iterable[bytes], cap: int,
             field: str | None = None, size_hint: int | None = None) -> Upload:
        """A one-step upload: the row, then its bytes; nothing is left if either fails."""
        upload = self.create(key_id=key_id, filename=filename, size_hint=size_hint)
        try:
            return self.write(upload, chunks, cap=cap, field=field)
        except BaseException:
            self.discard(upload.id)
            raise

    # --- the two-step PUT ---
    def pending(self, upload_id: str) -> Upload:
        """The upload a PUT names, if it still waits for its bytes (its id is the permission)."""
        upload = self._row(upload_id)
        if upload is None or upload.expires_at <= utcnow():
            raise NotFound(f"no upload {upload_id[:40]}; ask for a new one (POST /api/v3/media/uploads)")
        if upload.complete:
            raise Conflict(f"upload {upload_id} already has its file; ask for a new upload", code="upload_complete")
        return upload

    # --- using one ---
    def source(self, upload_id: str, *, key_id: str | None, field: str) -> tuple[Upload, str]:
        """A caller's own, complete, unexpired upload, and its display name."""
        upload = self._row(upload_id)
        if upload is None or upload.api_key_id != key_id or not upload.complete or upload.expires_at <= utcnow():
            raise self._unusable(upload_id, field)
        return upload, upload.filename

    def copy_to(self, upload_id: str, dest_dir: Path, *, key_id: str | None, field: str) -> Path:
        """Copy a caller's own upload into ``dest_dir`` (named after the field and its display name)."""
        upload, name = self.source(upload_id, key_id=key_id, field=field)
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / f"{field.replace('.', '_')}-{name}"
        try:
            self.storage.copy_upload(upload.id, target)
        except FileNotFoundError:  # its row outlived its bytes (a sweep between the two)
            raise self._unusable(upload_id, field) from None
        return target

    @staticmethod
    def _unusable(upload_id: str, field: str) -> InvalidRequest:
        return InvalidRequest(f"{field}: no upload {upload_id} (it expired, was never finished, or another key "
                              "made it); upload the file again", field=field)

    def owned(self, upload_id: str, *, key_id: str | None) -> Upload:
        """A caller's own complete, unexpired upload (GET /v1/uploads/{id}); another key's is as missing."""
        upload = self._row(upload_id)
        if upload is None or upload.api_key_id != key_id or not upload.complete or upload.expires_at <= utcnow():
            raise NotFound(f"no upload {upload_id[:40]} for this key (uploads expire "
                           f"{self.settings.upload_ttl_s / 3600:g} h after they are made); upload the file again")
        return upload

    def forget_expired(self) -> int:
        """Drop the rows of expired uploads (the retention sweep deletes their files)."""
        with self.sessions.begin() as session:
            return session.execute(delete(Upload).where(Upload.expires_at <= utcnow())).rowcount

    def discard(self, upload_id: str) -> None:
        with self.sessions.begin() as session:
            session.execute(delete(Upload).where(Upload.id == upload_id))
        self.storage.delete_upload(upload_id)

    def _row(self, upload_id: str) -> Upload | None:
        if not UPLOAD_ID.match(upload_id):
            return None
        with self.sessions() as session:
            return session.get(Upload, upload_id)


class _Sink:
    """Counts an upload's bytes against its caps while they go into storage's pending file, which keeps them
    only when all arrived (``commit``); ``discard`` leaves nothing."""

    def __init__(self, pending: PendingFile, *, cap: int, quota: int, field: str | None) -> None:
        self._out = pending.file
        self.cap, self.quota, self.field, self.size = cap, quota, field, 0
        self.commit, self.discard = pending.commit, pending.discard

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            prefix = f"{self.field}: " if self.field else ""
            raise InputTooLarge(f"{prefix}files up to {self.cap // 2**20} MiB are accepted", field=self.field)
        if self.size > self.quota:
            raise TooManyRequests("this upload would take the key over its quota of stored uploads; use or let "
                                  "older uploads expire, or send inputs as URLs", retry_after=60,
                                  code="upload_quota_exceeded")
        self._out.write(chunk)
