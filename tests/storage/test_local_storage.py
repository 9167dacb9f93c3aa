"""Signed output URLs and the retention sweep."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from infinitetalk.config import Settings
from infinitetalk.errors import Gone, NotFound
from infinitetalk.storage import LocalStorage
from infinitetalk.storage.retention import sweep


def _storage(tmp_path: Path, **extra: object) -> tuple[LocalStorage, Settings]:
    settings = Settings(data_dir=tmp_path, **extra)
    return LocalStorage(settings), settings


def test_signed_url_round_trip(tmp_path: Path) -> None:
    storage, _ = _storage(tmp_path)
    path = storage.output_path("task_1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"mp4")
    expires = int(time.time()) + 60
    sig = storage.sign("task_1", "video.mp4", expires)
    assert storage.open_signed("task_1", "video.mp4", expires=expires, sig=sig) == path
    with pytest.raises(NotFound):
        storage.open_signed("task_1", "video.mp4", expires=expires + 1, sig=sig)  # extended by hand
    with pytest.raises(NotFound):
        storage.open_signed("../x", "video.mp4", expires=expires, sig=sig)
    past = int(time.time()) - 1
    with pytest.raises(Gone):
        storage.open_signed("task_1", "video.mp4", expires=past, sig=storage.sign("task_1", "video.mp4", past))


def test_signing_key_survives_restarts(tmp_path: Path) -> None:
    first, _ = _storage(tmp_path)
    second, _ = _storage(tmp_path)
    assert first.sign("t", "v.mp4", 5) == second.sign("t", "v.mp4", 5)


def test_sweep_deletes_only_expired_outputs(tmp_path: Path) -> None:
    storage, settings = _storage(tmp_path, output_ttl_s=100, task_timeout_s=1000)
    old, fresh, partial = storage.output_path("old"), storage.output_path("fresh"), storage.output_path("run", ".v.partial.mp4")
    for path in (old, fresh, partial):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    now = time.time()
    os.utime(old, (now - 200, now - 200))
    os.utime(partial, (now - 200, now - 200))  # a running task's partial file is not an expired output
    assert sweep(storage, settings, now=now) == 1
    assert not old.parent.exists() and fresh.exists() and partial.exists()
