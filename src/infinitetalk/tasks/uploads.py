"""Uploaded input files: one row per upload (owner, the caller's file name, size, expiry), its bytes in
storage under the upload's own id. A caller's file name is only ever data; the disk sees our ids.

Two shapes: one step (multipart: the bytes come with the request) and two steps (WaveSpeed's SDK: a ticket
first, then a PUT of the bytes to the ticket's URL). Caps are counted while bytes stream in. Per-key quotas
(live uploads and their bytes) are checked under the key's quota lock together with the write they guard: the
row at create (holding the bytes it announced), then more bytes as they arrive beyond what the row holds, so
concurrent uploads of one key never hold more than its quota between them.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
from collections.abc import AsyncIterable, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import BigInteger, cast, delete, func, select, update

from infinitetalk.config import Settings
from infinitetalk.errors import Conflict, InputTooLarge, InvalidRequest, NotFound, TooManyRequests
from infinitetalk.storage import Storage
from infinitetalk.storage.base import PendingFile
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.locks import quota_lock
from infinitetalk.tasks.models import Upload, utcnow

#: "upl_" + secrets.token_urlsafe(16): 128 random bits, which is also the two-step PUT's permission.
UPLOAD_ID = re.compile(r"^upl_[A-Za-z0-9_-]{22}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: An upload streaming past the bytes its row holds takes the quota lock again for twice what it has, at most
#: this much more: a 200 MB file takes the lock a few dozen times, not once a chunk, and holds little it may
#: not need (a near-full key's other uploads are refused only on bytes that really arrived).
RESERVE_AHEAD_MAX = 8 * 2**20


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
        with quota_lock(self.sessions, key_id) as session:
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

    def _reserve(self, upload: Upload, received: int) -> int:
        """Hold room in the key's byte quota for the ``received`` bytes of ``upload`` (and some ahead, see
        RESERVE_AHEAD_MAX) on its row; the bytes it now holds. 429 when they do not fit beside the key's other
        uploads."""
        now = utcnow()
        key_id = upload.api_key_id
        owner = Upload.api_key_id.is_(None) if key_id is None else Upload.api_key_id == key_id
        with quota_lock(self.sessions, key_id) as session:
            others = session.scalar(select(_bytes_held()).where(owner, Upload.expires_at > now, Upload.id != upload.id))
            room = self.settings.max_upload_bytes_per_key - others
            if received > room:
                raise TooManyRequests(
                    "this upload would take the key over its quota of stored uploads "
                    f"({self.settings.max_upload_bytes_per_key // 2**20} MiB); use or let older uploads expire, or "
                    "send inputs as URLs", retry_after=60, code="upload_quota_exceeded")
            held = min(room, received + min(received, RESERVE_AHEAD_MAX))
            if session.execute(update(Upload).where(Upload.id == upload.id).values(size=held)).rowcount != 1:
                raise self._gone(upload.id)
        return held

    def _sink(self, upload: Upload, *, cap: int, field: str | None) -> _Sink:
        # the row already holds what its create announced (a one-step upload's whole size)
        return _Sink(self.storage.new_upload(upload.id), cap=cap, held=upload.size, field=field,
                     reserve=lambda received: self._reserve(upload, received))

    def write(self, upload: Upload, chunks: Iterable[bytes], *, cap: int, field: str | None = None) -> Upload:
        """Stream ``chunks`` into the upload's file (whole or nothing), counting against ``cap`` and the quota."""
        sink = self._sink(upload, cap=cap, field=field)
        try:
            for chunk in chunks:
                sink.add(chunk)
        except BaseException:
            sink.discard()
            raise
        sink.commit()
        return self._completed(upload, sink.size)

    async def write_stream(self, upload: Upload, chunks: AsyncIterable[bytes], *, cap: int) -> Upload:
        """``write`` for a request body read as it arrives (the two-step PUT). A PUT that fails or is refused
        leaves nothing: neither bytes nor the upload (the caller asks for a new one)."""
        sink = self._sink(upload, cap=cap, field=None)
        try:
            try:
                async for chunk in chunks:
                    if sink.size + len(chunk) > sink.held:  # the quota lock may wait: not on the event loop
                        await asyncio.to_thread(sink.hold, sink.size + len(chunk))
                    sink.add(chunk)
            except BaseException:
                sink.discard()
                raise
            await asyncio.to_thread(sink.commit)  # to S3 storage that is a transfer: not on the event loop
            return await asyncio.to_thread(self._completed, upload, sink.size)
        except BaseException:
            # in a thread, which finishes even when this request is being cancelled
            await asyncio.to_thread(self.discard, upload.id)
            raise

    def _completed(self, upload: Upload, size: int) -> Upload:
        # no lock: a row only ever gives back room here (``size`` is at most what it held)
        with self.sessions.begin() as session:
            done = session.execute(update(Upload).where(Upload.id == upload.id).values(size=size, complete=True))
        if done.rowcount != 1:  # its row went while the bytes came (it expired, or another PUT of it failed)
            self.storage.delete_upload(upload.id)
            raise self._gone(upload.id)
        upload.size, upload.complete = size, True
        return upload

    @staticmethod
    def _gone(upload_id: str) -> NotFound:
        return NotFound(f"upload {upload_id} is gone (it expired or its upload failed); upload the file again")

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
    def claim(self, upload_id: str) -> Upload:
        """The upload a PUT names, taken for that PUT alone if it still waits for its bytes (its id is the
        permission). One conditional UPDATE, so of two PUTs at once (a client's retry while the first still
        streams) one gets it and the other a 409: their bytes never mix, and the row's size is its file's."""
        upload = self._row(upload_id)
        if upload is None or upload.expires_at <= utcnow():
            raise NotFound(f"no upload {upload_id[:40]}; ask for a new one (POST /api/v3/media/uploads)")
        if upload.complete:
            raise Conflict(f"upload {upload_id} already has its file; ask for a new upload", code="upload_complete")
        with self.sessions.begin() as session:
            taken = session.execute(update(Upload).where(Upload.id == upload_id, Upload.complete.is_(False),
                                                         Upload.receiving.is_(False)).values(receiving=True))
        if taken.rowcount != 1:
            raise Conflict(f"upload {upload_id} is being sent by another request; wait for it, or ask for a new "
                           "upload", code="upload_busy")
        upload.receiving = True
        return upload

    # --- using one ---
    def source(self, upload_id: str, *, key_id: str | None, field: str) -> tuple[Upload, str]:
        """A caller's own, complete, unexpired upload, and its display name."""
        upload = self._row(upload_id)
        if upload is None or upload.api_key_id != key_id or not upload.complete or upload.expires_at <= utcnow():
            raise self._unusable(upload_id, field)
        return upload, upload.filename

    def copy_to(self, upload_id: str, dest_dir: Path, *, key_id: str | None, field: str, cap: int) -> Path:
        """Copy a caller's own upload into ``dest_dir`` (named after the field and its display name), if it is
        within ``cap``, the input's own limit: an upload may be as large as the largest kind (a video), and an
        audio or image field must not take one that a URL of the same size would be refused for."""
        upload, name = self.source(upload_id, key_id=key_id, field=field)
        if upload.size > cap:
            raise InputTooLarge(f"{field}: upload {upload_id} is {upload.size / 2**20:.1f} MiB, over this input's "
                                f"{cap // 2**20} MiB limit; send a smaller file", field=field)
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
    """Counts an upload's bytes against its cap while they go into storage's pending file, which keeps them
    only when all arrived (``commit``); ``discard`` leaves nothing. Bytes past what the upload's row holds in
    its key's quota are asked for first (``hold``)."""

    def __init__(self, pending: PendingFile, *, cap: int, held: int, field: str | None,
                 reserve: Callable[[int], int]) -> None:
        self._out, self._reserve = pending.file, reserve
        self.cap, self.held, self.field, self.size = cap, held, field, 0
        self.commit, self.discard = pending.commit, pending.discard

    def hold(self, size: int) -> None:
        """Room for ``size`` bytes in the key's quota (429 when there is none)."""
        self._check_cap(size)
        self.held = self._reserve(size)

    def add(self, chunk: bytes) -> None:
        size = self.size + len(chunk)
        self._check_cap(size)
        if size > self.held:
            self.hold(size)
        self._out.write(chunk)
        self.size = size

    def _check_cap(self, size: int) -> None:
        if size > self.cap:
            prefix = f"{self.field}: " if self.field else ""
            raise InputTooLarge(f"{prefix}files up to {self.cap // 2**20} MiB are accepted", field=self.field)
