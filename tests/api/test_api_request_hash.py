"""What an Idempotency-Key is matched against: the hash each submit path stores. The values are pinned here,
computed apart from the server's code, because keys stored before an upgrade must still match after it (a
changed hash turns a client's retry into a 409)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import pytest
from api_servers import FileServer, Server, settings_for

from infinitetalk.client import ApiError
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.models import Task

# the stored hash is read from the SQLite file; the PostgreSQL run hashes the same bytes
pytestmark = pytest.mark.sqlite_only


def _stored_hash(server: Server, task_id: str) -> str:
    db, sessions = open_database(settings_for(server.data_dir))
    try:
        with sessions() as session:
            return session.get(Task, task_id).request_hash
    finally:
        db.dispose()


def _stop(server: Server, task_id: str) -> None:
    with contextlib.suppress(ApiError):  # 409 when it already ended: nothing left to save
        server.client().cancel(task_id)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_json_body_is_hashed_as_its_canonical_json(preview_server: Server, file_server: FileServer) -> None:
    client = preview_server.client()
    body = {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav"), "seed": 11,
            "fps": 16}
    task = client.submit(body, idempotency_key="hash-json")
    try:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert _stored_hash(preview_server, task["id"]) == _sha256(canonical)
        # the same body with its keys in another order is the same request
        again = client.submit(dict(reversed(body.items())), idempotency_key="hash-json")
        assert again["id"] == task["id"]
    finally:
        _stop(preview_server, task["id"])


def test_a_form_is_hashed_by_its_files_bytes(preview_server: Server, short_speech_wav: Path,
                                             grace_hopper_path: Path) -> None:
    client = preview_server.client()
    extra = {"seed": 12, "fps": 16}
    task = client.submit(extra, files={"image": grace_hopper_path, "audio": short_speech_wav},
                         idempotency_key="hash-form")
    try:
        # each file by its bytes (its upload id is new on every submit), the `request` field as canonical JSON,
        # the pairs sorted and dumped as json.dumps writes them by default
        parts = [("image", _sha256(grace_hopper_path.read_bytes())), ("audio", _sha256(short_speech_wav.read_bytes())),
                 ("request", _sha256(json.dumps(extra, sort_keys=True, separators=(",", ":")).encode()))]
        assert _stored_hash(preview_server, task["id"]) == _sha256(json.dumps(sorted(parts)).encode())
        again = client.submit(extra, files={"image": grace_hopper_path, "audio": short_speech_wav},
                              idempotency_key="hash-form")
        assert again["id"] == task["id"]
    finally:
        _stop(preview_server, task["id"])
