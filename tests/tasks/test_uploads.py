"""Uploads in the store and on disk: names stay data, caps and quotas hold while bytes stream, nothing is
left half-written, expired uploads cannot be used and their rows go."""

from __future__ import annotations

from pathlib import Path

import pytest

from infinitetalk.config import Settings
from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.storage import LocalStorage
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.errors import TooManyRequests
from infinitetalk.tasks.uploads import Uploads, clean_filename


def _uploads(tmp_path: Path, **settings: object) -> Uploads:
    config = Settings(data_dir=tmp_path, **settings)
    _, sessions = open_database(config)
    return Uploads(sessions=sessions, storage=LocalStorage(config), settings=config)


@pytest.mark.parametrize(("name", "shown"), [("..", "file"), (".owner", "owner"), ("../../etc/passwd", "passwd"),
                                             ("a b\\c.wav", "c.wav"), ("", "file"), ("ok.mp3", "ok.mp3")])
def test_clean_filename(name: str, shown: str) -> None:
    assert clean_filename(name) == shown


def test_a_file_over_its_cap_leaves_nothing(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path)
    with pytest.raises(InputTooLarge):
        uploads.save(key_id=None, filename="big.wav", chunks=[b"x" * 600, b"x" * 600], cap=1000, field="file")
    assert list((tmp_path / "uploads").rglob("*")) == []


def test_quota_counts_bytes_while_they_stream(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path, max_upload_bytes_per_key=1500)
    uploads.save(key_id="key_a", filename="a.wav", chunks=[b"x" * 1000], cap=10_000)
    with pytest.raises(TooManyRequests) as caught:
        uploads.save(key_id="key_a", filename="b.wav", chunks=[b"x" * 400, b"x" * 400], cap=10_000)
    assert caught.value.code == "upload_quota_exceeded"
    uploads.save(key_id="key_b", filename="b.wav", chunks=[b"x" * 1000], cap=10_000)  # another key's own quota


def test_expired_uploads_cannot_be_used_and_are_forgotten(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path, upload_ttl_s=-1)
    upload = uploads.save(key_id=None, filename="a.wav", chunks=[b"x"], cap=10)
    with pytest.raises(InvalidRequest):
        uploads.source(upload.id, key_id=None, field="audio")
    assert uploads.forget_expired() == 1


def test_another_keys_upload_is_invisible(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path)
    upload = uploads.save(key_id="key_a", filename="a.wav", chunks=[b"x"], cap=10)
    assert uploads.source(upload.id, key_id="key_a", field="audio")[1] == "a.wav"
    with pytest.raises(InvalidRequest):
        uploads.source(upload.id, key_id="key_b", field="audio")
