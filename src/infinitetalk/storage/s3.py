"""S3 storage for a fleet: every API and worker process, on any machine, shares one bucket.

Keys under ``s3://bucket/prefix/``: ``inputs/<task>/<path>`` (written once by the API that took the task, read by
the worker that runs it, deleted when the task ends), ``outputs/<task>/<name>`` (written by that worker, served
through presigned URLs, deleted by the retention sweep), ``uploads/<id>/data``, and ``signing.key`` (the HMAC key
of our output URLs, when INFINITETALK_SIGNING_SECRET does not give one: every API process must sign alike).

Files are made locally first, in ``<data_dir>/s3-scratch``, and stored whole: an S3 object appears only once all
of its bytes arrived (one PUT, or a multipart upload that completes), so nothing half-written is ever read.

boto3 does the talking (credentials, region, SigV4, presigning, multipart transfers and retries): the usual AWS
variables or profile, and INFINITETALK_S3_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) for MinIO, SeaweedFS or R2.

Output links reach clients, which may not reach the bucket where the processes do (``http://minio:9000`` in
compose): INFINITETALK_S3_PUBLIC_ENDPOINT_URL presigns them for the address clients use, and
INFINITETALK_S3_LINKS=proxy streams them through the API instead of redirecting.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import secrets
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import boto3
import boto3.exceptions
import botocore.exceptions
import botocore.response
from botocore.config import Config

from infinitetalk.config import Settings
from infinitetalk.errors import StorageUnavailable
from infinitetalk.storage.base import (
    SAFE_NAME,
    VIDEO_SUFFIX,
    Download,
    Streamed,
    check_signed,
    content_type,
    missing_output,
    preview_segment,
    sign,
)

log = logging.getLogger(__name__)

#: Everything boto3 raises for a bucket that did not answer, refused us, or failed a transfer.
_S3_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, boto3.exceptions.Boto3Error)

#: The longest a SigV4 presigned URL may live.
MAX_PRESIGN_S = 7 * 24 * 3600

#: The sweep waits this much past an object's TTL: LastModified is the server's clock, in whole seconds, and an
#: output is stored a moment before its task's end (when its TTL starts), so it never goes before its URL lapses.
SWEEP_GRACE_S = 5

_SCRATCH = ("inputs", "outputs", "uploads", "tmp")

#: The one byte range S3 serves (it ignores several): ``bytes=first-[last]`` or ``bytes=-suffix``.
_ONE_RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)$")

#: Proxied outputs go to the client in pieces this big.
_STREAM_CHUNK = 1024**2


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at either end)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"INFINITETALK_STORAGE_URL: expected s3://bucket or s3://bucket/prefix, got {url!r}")
    return parts.netloc, parts.path.strip("/")


def _missing(exc: BaseException) -> bool:
    """Whether S3 answered "no such key" (GET says NoSuchKey; HEAD and transfers only say 404)."""
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    error = exc.response.get("Error", {})
    return error.get("Code") in ("404", "NoSuchKey", "NotFound") or \
        exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404


class S3Storage:
    shared = True

    def __init__(self, settings: Settings) -> None:
        assert settings.storage_url
        self.bucket, self.prefix = parse_url(settings.storage_url)
        self.settings = settings
        self.root = settings.data_dir.resolve() / "s3-scratch"
        for name in _SCRATCH:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        endpoint = settings.s3_endpoint_url or None
        public = settings.s3_public_endpoint_url or None
        # S3-compatible servers at an address of their own (MinIO, SeaweedFS) have no per-bucket host names, and
        # some refuse the CRC checksums boto3 >= 1.36 adds to every request unless asked: send them when required
        compatible = {"s3": {"addressing_style": "path"}, "request_checksum_calculation": "when_required",
                      "response_checksum_validation": "when_required"} if endpoint or public else {}
        config = Config(
            signature_version="s3v4", **compatible,
            # a storage blip is retried with backoff; a bucket that stays down is a 503 within seconds
            retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=60)
        session = boto3.session.Session()
        self.client = session.client("s3", endpoint_url=endpoint, config=config)
        # SigV4 signs the host, so a link for the clients' address must be presigned for that address; presigning
        # makes no request, so this client never talks to the public endpoint itself
        self._links = session.client("s3", endpoint_url=public, config=config) if public else self.client
        self._key = self._signing_key()

    def __repr__(self) -> str:
        return f"S3Storage(s3://{self.bucket}/{self.prefix})"

    # --- keys and errors ---
    def _object(self, *parts: str) -> str:
        for part in parts:
            if not SAFE_NAME.match(part):
                raise ValueError(f"not a storage name of ours: {part!r}")
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def _folder(self, *parts: str) -> str:
        return self._object(*parts) + "/"

    @contextlib.contextmanager
    def _calling(self, what: str, message: str | None = None) -> Iterator[None]:
        """S3 trouble -> StorageUnavailable: the details (bucket, key, boto's words) go to the log only."""
        try:
            yield
        except _S3_ERRORS as exc:
            log.warning("S3 %s failed (s3://%s/%s): %s", what, self.bucket, self.prefix, exc)
            raise (StorageUnavailable(message) if message else StorageUnavailable()) from exc

    def _signing_key(self) -> bytes:
        """INFINITETALK_SIGNING_SECRET, else the bucket's ``signing.key``, made once by whichever process
        starts first (a conditional PUT: the others read the winner's). Also the start-up check: a bucket
        we cannot reach ends the start with what was wrong."""
        key = self._object("signing.key")
        try:
            if self.settings.signing_secret:
                self.client.head_bucket(Bucket=self.bucket)
                return self.settings.signing_secret.encode()
            try:
                return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().strip()
            except botocore.exceptions.ClientError as exc:
                if not _missing(exc):
                    raise
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=secrets.token_hex(32).encode(),
                                       IfNoneMatch="*")
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") not in (409, 412):
                    raise  # 412 (409 while a racing PUT is under way): another process made it first
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().strip()
        except _S3_ERRORS as exc:
            where = f" at {self.settings.s3_endpoint_url}" if self.settings.s3_endpoint_url else ""
            raise StorageUnavailable(
                f"INFINITETALK_STORAGE_URL: cannot use s3://{self.bucket}/{self.prefix}{where}: {exc}. Check the "
                "bucket exists, the AWS credentials and region (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                "AWS_REGION) and, for MinIO/SeaweedFS/R2, INFINITETALK_S3_ENDPOINT_URL") from None

    def _list(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                "Objects": [{"Key": key} for key in keys[start:start + 1000]], "Quiet": True})
            if answer.get("Errors"):
                first = answer["Errors"][0]
                log.warning("S3 refused to delete %d object(s), e.g. %s: %s", len(answer["Errors"]),
                            first.get("Key"), first.get("Message"))

    # --- a task's inputs ---
    def input_dir(self, task_id: str) -> Path:
        return self.root / "inputs" / task_id

    def store_inputs(self, task_id: str) -> None:
        folder = self.input_dir(task_id)
        with self._calling(f"storing the inputs of {task_id}"):
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                relative = path.relative_to(folder).parts
                self.client.upload_file(str(path), self.bucket, self._object("inputs", task_id, *relative))
        shutil.rmtree(folder, ignore_errors=True)  # the worker downloads its own copy, wherever it runs

    def open_inputs(self, task_id: str) -> Path:
        self._prune_scratch(2 * self.settings.task_timeout_s, time.time())
        folder, prefix = self.input_dir(task_id), self._folder("inputs", task_id)
        with self._calling(f"reading the inputs of {task_id}"):
            keys = [item["Key"] for item in self._list(prefix)]
            if not keys:
                raise FileNotFoundError(f"task {task_id} has no inputs in s3://{self.bucket}/{prefix}")
            for key in keys:
                relative = PurePosixPath(key[len(prefix):])
                if not all(SAFE_NAME.match(part) for part in relative.parts):  # only names we wrote
                    raise FileNotFoundError(f"unexpected input object {key!r}")
                target = folder.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, key, str(target))
        return folder

    def delete_inputs(self, task_id: str) -> None:
        try:
            with self._calling(f"deleting the inputs of {task_id}"):
                self._delete([item["Key"] for item in self._list(self._folder("inputs", task_id))])
        except StorageUnavailable:  # logged; the task has ended either way
            pass
        # this machine's copies: the download, and a render never stored (a flagged or failed one)
        shutil.rmtree(self.input_dir(task_id), ignore_errors=True)
        shutil.rmtree(self.root / "outputs" / task_id, ignore_errors=True)

    # --- a task's outputs ---
    def output_path(self, task_id: str, name: str = "video.mp4") -> Path:
        return self.root / "outputs" / task_id / name

    def store_output(self, task_id: str, path: Path, *, keep: bool = False) -> None:
        key = self._object("outputs", task_id, path.name)
        with self._calling(f"storing the output of {task_id}",
                           "the video was made but could not be stored; try again in a few minutes"):
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type(path.name)})
        if keep:
            return
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def delete_output(self, task_id: str, name: str) -> None:
        if not (SAFE_NAME.match(task_id) and SAFE_NAME.match(name)):
            return
        with contextlib.suppress(StorageUnavailable), self._calling(f"deleting output {name} of {task_id}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._object("outputs", task_id, name))

    @contextlib.contextmanager
    def local_output(self, task_id: str, name: str) -> Iterator[Path]:
        key = self._object("outputs", task_id, name)
        with tempfile.TemporaryDirectory(dir=self.root / "tmp") as folder:
            target = Path(folder) / name
            with self._calling(f"reading the output of {task_id}"):
                try:
                    self.client.download_file(self.bucket, key, str(target))
                except botocore.exceptions.ClientError as exc:
                    if _missing(exc):
                        raise FileNotFoundError(f"no output {name} of task {task_id}") from None
                    raise
            yield target

    def sign(self, task_id: str, name: str, expires: int) -> str:
        return sign(self._key, task_id, name, expires)

    def check_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> None:
        check_signed(self._key, task_id, name, expires, sig)

    def open_signed(self, task_id: str, name: str, *, expires: int, sig: str) -> Download:
        """A presigned GET of the output that lapses when our URL does (SigV4 allows at most 7 days)."""
        check_signed(self._key, task_id, name, expires, sig)
        left = expires - time.time()
        gone = missing_output(name)
        key = self._object("outputs", task_id, name)
        with self._calling(f"presigning the output of {task_id}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
            except botocore.exceptions.ClientError as exc:
                if _missing(exc):
                    raise gone from None
                raise
            if self.settings.s3_links == "proxy":
                return Streamed(functools.partial(self._stream, key, name))
            return self._links.generate_presigned_url("get_object", ExpiresIn=max(1, min(int(left), MAX_PRESIGN_S)),
                                                      Params={"Bucket": self.bucket, "Key": key,
                                                              "ResponseContentType": content_type(name),
                                                              "ResponseContentDisposition":
                                                                  f'attachment; filename="{name}"'})

    def _stream(self, key: str, name: str, byte_range: str | None) -> tuple[int, dict[str, str], Iterator[bytes]]:
        """GET the object (or the one range a player asked for; any other Range header is ignored, as HTTP
        allows) for the API to send on."""
        ranged = {"Range": byte_range} if byte_range and _ONE_RANGE.match(byte_range) else {}
        with self._calling(f"reading output {name}"):
            try:
                answer = self.client.get_object(Bucket=self.bucket, Key=key, **ranged)
            except botocore.exceptions.ClientError as exc:
                if _missing(exc):
                    raise missing_output(name) from None
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 416 or not ranged:
                    raise
                answer = self.client.get_object(Bucket=self.bucket, Key=key)  # a range past the end: all of it
        headers = {"Content-Type": content_type(name), "Content-Length": str(answer["ContentLength"]),
                   "Content-Disposition": f'attachment; filename="{name}"', "Accept-Ranges": "bytes",
                   "Cache-Control": "no-store"}
        if answer.get("ContentRange"):
            headers["Content-Range"] = answer["ContentRange"]
        return (206 if "Content-Range" in headers else 200), headers, self._chunks(answer["Body"])

    @staticmethod
    def _chunks(body: botocore.response.StreamingBody) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(_STREAM_CHUNK)
        finally:
            body.close()  # a client that hung up frees the bucket's connection too

    # --- uploads ---
    def new_upload(self, upload_id: str) -> _PendingUpload:
        return _PendingUpload(self, self._object("uploads", upload_id, "data"))

    def copy_upload(self, upload_id: str, target: Path) -> None:
        key = self._object("uploads", upload_id, "data")
        with self._calling(f"reading upload {upload_id}"):
            try:
                self.client.download_file(self.bucket, key, str(target))
            except botocore.exceptions.ClientError as exc:
                if _missing(exc):
                    raise FileNotFoundError(f"no upload {upload_id}") from None
                raise

    def delete_upload(self, upload_id: str) -> None:
        if not SAFE_NAME.match(upload_id):
            return
        with contextlib.suppress(StorageUnavailable), self._calling(f"deleting upload {upload_id}"):
            self.client.delete_object(Bucket=self.bucket, Key=self._object("uploads", upload_id, "data"))

    # --- retention ---
    def delete_expired(self, *, output_ttl_s: float, upload_ttl_s: float, stale_s: float, now: float,
                       preview_grace_s: float | None = None) -> tuple[int, int]:
        """List and delete by age (S3's LastModified: when the object was stored, i.e. when its task ended).

        We delete what we own ourselves rather than leave it to a bucket lifecycle rule: those count whole
        days, our TTLs are seconds, and an output must be gone once its URL answers 410. An operator may add a
        rule anyway, as a net under objects a crashed process never got to delete (``inputs/`` of a submit
        killed half-way)."""
        counts = []
        for folder, ttl_s in (("outputs", output_ttl_s), ("uploads", upload_ttl_s)):
            prefix = f"{self.prefix}/{folder}/" if self.prefix else f"{folder}/"
            with self._calling(f"sweeping {folder}"):
                cutoff = now - ttl_s - SWEEP_GRACE_S
                items = list(self._list(prefix))
                old = _expired(items, cutoff, by_folder=folder == "outputs")
                if folder == "outputs" and preview_grace_s is not None:
                    old += _redundant_segments(items, now - preview_grace_s - SWEEP_GRACE_S, set(old))
                self._delete(old)
            counts.append(len(old))
        self._prune_scratch(stale_s, now)
        return counts[0], counts[1]

    def _prune_scratch(self, stale_s: float, now: float) -> None:
        """This machine's leftovers of killed processes: inputs of a task that ended elsewhere, renders never
        stored. Nothing lives here longer than a task may run."""
        for name in _SCRATCH:
            for path in sorted((self.root / name).rglob("*"), reverse=True):  # files before their folders
                with contextlib.suppress(OSError):
                    if path.stat().st_mtime + stale_s >= now:
                        continue  # a folder's mtime moves with every file made in it: a fresh one is in use
                    if path.is_dir():
                        path.rmdir()  # only when empty
                    else:
                        path.unlink()


def _redundant_segments(items: list[dict], cutoff: float, going: set[str]) -> list[str]:
    """The preview segments of each task whose video was stored before ``cutoff`` (and not already ``going``)."""
    finished = {item["Key"].rsplit("/", 1)[0] for item in items
                if item["Key"].endswith(VIDEO_SUFFIX) and item["LastModified"].timestamp() < cutoff}
    return [item["Key"] for item in items if item["Key"] not in going
            and preview_segment(item["Key"].rsplit("/", 1)[1]) and item["Key"].rsplit("/", 1)[0] in finished]


def _expired(items: Iterable[dict], cutoff: float, *, by_folder: bool) -> list[str]:
    """Keys stored before ``cutoff``. ``by_folder``: a task's outputs go together, once the newest is that old
    (a long render's first segments are older than the TTL before it ends; its checkpoint is rewritten with
    every chunk)."""
    newest: dict[str, float] = {}
    keys: dict[str, list[str]] = {}
    for item in items:
        group = item["Key"].rsplit("/", 1)[0] if by_folder else item["Key"]
        newest[group] = max(newest.get(group, 0.0), item["LastModified"].timestamp())
        keys.setdefault(group, []).append(item["Key"])
    return [key for group, when in newest.items() if when < cutoff for key in keys[group]]


class _PendingUpload:
    """An upload's bytes in a local file, stored as one object by ``commit``; on any failure nothing is kept."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self._storage, self._key = storage, key
        fd, name = tempfile.mkstemp(prefix=".partial-", dir=storage.root / "uploads")
        self._path = Path(name)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> None:
        self.file.close()
        try:
            with self._storage._calling("storing an upload"):
                self._storage.client.upload_file(str(self._path), self._storage.bucket, self._key)
        finally:
            self._path.unlink(missing_ok=True)

    def discard(self) -> None:
        self.file.close()
        self._path.unlink(missing_ok=True)
