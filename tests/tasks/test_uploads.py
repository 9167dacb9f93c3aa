"""Uploads in the store and on disk: names stay data, caps and quotas hold while bytes stream, nothing is
left half-written, expired uploads cannot be used and their rows go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from infinitetalk.config import Settings
from infinitetalk.errors import Conflict, InputTooLarge, InvalidRequest, NotFound, TooManyRequests
from infinitetalk.storage import LocalStorage
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.models import Upload
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


async def _body(parts: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(parts):
        await asyncio.sleep(0)  # lets the other PUT's chunk in between: their bytes arrive interleaved
        yield b"x" * size


def _stored(uploads: Uploads, tmp_path: Path, key_id: str) -> tuple[int, int, int]:
    """(rows, their bytes, bytes of files on disk) of ``key_id``'s uploads."""
    with uploads.sessions() as session:
        rows = session.scalars(select(Upload).where(Upload.api_key_id == key_id)).all()
    on_disk = sum(path.stat().st_size for path in (tmp_path / "uploads").rglob("*") if path.is_file())
    return len(rows), sum(row.size for row in rows), on_disk


def test_size_less_puts_at_once_share_the_byte_quota(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path, max_upload_bytes_per_key=500)
    tickets = [uploads.create(key_id="key_a", filename=f"{i}.bin") for i in range(2)]  # no size announced

    async def both() -> list[Upload | BaseException]:
        return await asyncio.gather(*(uploads.write_stream(ticket, _body(4, 100), cap=10_000)
                                      for ticket in tickets), return_exceptions=True)

    results = asyncio.run(both())
    refused = [result for result in results if isinstance(result, BaseException)]
    # one at least (both, when one's bytes still counted as the other asked: neither may pass the quota)
    assert refused and all(getattr(error, "code", None) == "upload_quota_exceeded" for error in refused), results
    # a refused PUT leaves nothing, its row included; a stored one holds what it is
    stored = len(results) - len(refused)
    assert _stored(uploads, tmp_path, "key_a") == (stored, 400 * stored, 400 * stored)
    # and the room the race left is there for the next upload
    uploads.save(key_id="key_a", filename="c.bin", chunks=[b"z" * (500 - 400 * stored)], cap=10_000)


def test_a_put_holds_its_bytes_as_they_arrive(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path, max_upload_bytes_per_key=1000)
    streaming = uploads.create(key_id="key_a", filename="a.bin")

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * 600
        # half-way through this PUT, its 600 bytes already count: another upload cannot take them
        with pytest.raises(TooManyRequests):
            uploads.save(key_id="key_a", filename="b.bin", chunks=[b"y" * 500], cap=10_000, size_hint=500)
        yield b"x" * 100

    done = asyncio.run(uploads.write_stream(streaming, body(), cap=10_000))
    assert done.size == 700 and _stored(uploads, tmp_path, "key_a") == (1, 700, 700)


def test_a_failed_put_leaves_nothing(tmp_path: Path) -> None:
    uploads = _uploads(tmp_path)
    ticket = uploads.create(key_id="key_a", filename="a.bin")
    with pytest.raises(InputTooLarge):
        asyncio.run(uploads.write_stream(ticket, _body(3, 100), cap=250))
    assert _stored(uploads, tmp_path, "key_a") == (0, 0, 0)
    with pytest.raises(NotFound):
        uploads.claim(ticket.id)


def test_two_puts_of_one_upload_cannot_mix(tmp_path: Path) -> None:
    """The upload id is the PUT's permission, so a client may send it twice (a retry while the first still
    streams): one PUT gets the upload, the other a 409, and the row says what the file holds."""
    uploads = _uploads(tmp_path)
    ticket = uploads.create(key_id="key_a", filename="a.bin")

    async def put(byte: bytes, parts: int) -> Upload:
        claimed = await asyncio.to_thread(uploads.claim, ticket.id)
        async def body() -> AsyncIterator[bytes]:
            for _ in range(parts):
                await asyncio.sleep(0.01)  # the other PUT's chunks arrive in between
                yield byte * 100
        return await uploads.write_stream(claimed, body(), cap=10_000)

    async def both() -> list[Upload | BaseException]:
        return await asyncio.gather(put(b"a", 4), put(b"b", 3), return_exceptions=True)

    results = asyncio.run(both())
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict), results
    assert refused[0].code == "upload_busy"
    (stored,) = [r for r in results if not isinstance(r, BaseException)]
    files = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].stat().st_size == stored.size
    assert set(files[0].read_bytes()) == {(b"a" if stored.size == 400 else b"b")[0]}
    assert _stored(uploads, tmp_path, "key_a") == (1, stored.size, stored.size)
    with pytest.raises(Conflict):  # and once it has its file, no PUT may replace it
        uploads.claim(ticket.id)


def test_an_upload_over_its_inputs_limit_is_refused(tmp_path: Path) -> None:
    """An upload may be as large as a video; used as audio or an image it meets that input's own limit."""
    uploads = _uploads(tmp_path)
    upload = uploads.save(key_id="key_a", filename="big.wav", chunks=[b"x" * 300], cap=10_000)
    with pytest.raises(InputTooLarge) as caught:
        uploads.copy_to(upload.id, tmp_path / "task", key_id="key_a", field="audio", cap=200)
    assert caught.value.field == "audio" and caught.value.http_status == 413 and "limit" in caught.value.message
    assert not (tmp_path / "task").exists()
    assert uploads.copy_to(upload.id, tmp_path / "task", key_id="key_a", field="video", cap=300).stat().st_size == 300
