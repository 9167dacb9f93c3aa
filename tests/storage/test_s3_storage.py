"""S3Storage against a real S3 server: SeaweedFS's gateway on loopback (the session's ``s3_endpoint``).

Each test works under a prefix of its own in the one bucket, and two storages on different data folders play two
machines of a fleet: what one stores, the other reads.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from services import S3Server, free_ports

from infinitetalk.config import Settings
from infinitetalk.errors import Gone, NotFound, StorageUnavailable
from infinitetalk.storage import LocalStorage, open_storage
from infinitetalk.storage.base import sign
from infinitetalk.storage.retention import sweep
from infinitetalk.storage.s3 import S3Storage, parse_url


@pytest.fixture
def s3_env(s3_endpoint: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The usual AWS variables, as an operator sets them (boto3 reads them itself)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_endpoint.region)
    return s3_endpoint


@pytest.fixture
def prefix() -> str:
    return f"tests/{secrets.token_hex(6)}"


def _settings(s3: S3Server, prefix: str, data_dir: Path, **extra: object) -> Settings:
    return Settings(data_dir=data_dir, storage_url=f"s3://{s3.bucket}/{prefix}", s3_endpoint_url=s3.endpoint_url,
                    **extra)


def _machines(s3: S3Server, prefix: str, tmp_path: Path, **extra: object) -> tuple[S3Storage, S3Storage]:
    """Two processes on two machines: their own data folders, one bucket."""
    first = open_storage(_settings(s3, prefix, tmp_path / "api", **extra))
    second = open_storage(_settings(s3, prefix, tmp_path / "worker", **extra))
    assert isinstance(first, S3Storage) and isinstance(second, S3Storage)
    return first, second


def _keys(s3: S3Server, prefix: str) -> list[str]:
    answer = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/")
    return sorted(item["Key"].removeprefix(prefix + "/") for item in answer.get("Contents", []))


def test_the_url_picks_the_storage(s3_env: S3Server, tmp_path: Path) -> None:
    assert isinstance(open_storage(Settings(data_dir=tmp_path)), LocalStorage)
    assert parse_url("s3://bucket") == ("bucket", "")
    assert parse_url("s3://bucket/a/b/") == ("bucket", "a/b")
    for bad in ("https://bucket/x", "s3:///x", "bucket/x", "s3://bucket/x?versionId=1"):
        with pytest.raises(ValueError, match="INFINITETALK_STORAGE_URL"):
            open_storage(Settings(data_dir=tmp_path, storage_url=bad))


def test_inputs_staged_by_the_api_are_read_by_a_worker_elsewhere(s3_env: S3Server, prefix: str,
                                                                  tmp_path: Path) -> None:
    api, worker = _machines(s3_env, prefix, tmp_path)
    staged = api.input_dir("task_1")
    (staged / "audio").mkdir(parents=True)
    (staged / "audio" / "audio-x1.wav").write_bytes(b"RIFF speech")
    (staged / "image-face.png").write_bytes(b"\x89PNG face")
    api.store_inputs("task_1")
    assert not staged.exists()  # the API keeps no copy: the worker may be on another machine
    assert _keys(s3_env, prefix) == ["inputs/task_1/audio/audio-x1.wav", "inputs/task_1/image-face.png",
                                     "signing.key"]

    folder = worker.open_inputs("task_1")
    assert folder.is_relative_to(worker.root)
    assert (folder / "audio" / "audio-x1.wav").read_bytes() == b"RIFF speech"
    assert (folder / "image-face.png").read_bytes() == b"\x89PNG face"

    worker.delete_inputs("task_1")
    assert not folder.exists()
    assert _keys(s3_env, prefix) == ["signing.key"]
    with pytest.raises(FileNotFoundError):
        worker.open_inputs("task_1")


def test_an_output_is_served_by_a_presigned_url_that_lapses_with_ours(s3_env: S3Server, prefix: str,
                                                                       tmp_path: Path) -> None:
    api, worker = _machines(s3_env, prefix, tmp_path)
    rendered = worker.output_path("task_2")
    rendered.parent.mkdir(parents=True)
    rendered.write_bytes(b"an mp4")
    worker.store_output("task_2", rendered)
    assert not rendered.exists() and not rendered.parent.exists()
    assert "outputs/task_2/video.mp4" in _keys(s3_env, prefix)

    expires = int(time.time()) + 120
    sig = worker.sign("task_2", "video.mp4", expires)  # as a webhook's link carries it
    target = api.open_signed("task_2", "video.mp4", expires=expires, sig=sig)  # any API process signs alike
    assert isinstance(target, str) and target.startswith(s3_env.endpoint_url)
    lifetime = int(urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)["X-Amz-Expires"][0])
    assert 115 <= lifetime <= 120  # never outlives our own URL
    response = httpx.get(target)
    assert response.status_code == 200 and response.content == b"an mp4"
    assert response.headers["content-type"] == "video/mp4"
    assert 'filename="video.mp4"' in response.headers["content-disposition"]

    with pytest.raises(NotFound):
        api.open_signed("task_2", "video.mp4", expires=expires + 1, sig=sig)  # extended by hand
    with pytest.raises(NotFound):
        api.open_signed("../x", "video.mp4", expires=expires, sig=sig)
    past = int(time.time()) - 1
    with pytest.raises(Gone):
        api.open_signed("task_2", "video.mp4", expires=past, sig=sign(api._key, "task_2", "video.mp4", past))

    with api.local_output("task_2", "video.mp4") as copy:  # what the Segmind-style sync route sends
        assert copy.read_bytes() == b"an mp4"
    assert not copy.exists()

    s3_env.client().delete_object(Bucket=s3_env.bucket, Key=f"{prefix}/outputs/task_2/video.mp4")
    with pytest.raises(Gone):  # deleted (swept) before its URL lapsed: gone, not a presigned 404
        api.open_signed("task_2", "video.mp4", expires=expires, sig=sig)
    with pytest.raises(FileNotFoundError), api.local_output("task_2", "video.mp4"):
        pass


def test_the_signing_key_is_made_once_and_shared(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    # four API processes start at once on a fresh bucket: one makes the key, all sign with it
    with ThreadPoolExecutor(4) as pool:
        storages = list(pool.map(lambda n: open_storage(_settings(s3_env, prefix, tmp_path / f"api{n}")), range(4)))
    assert len({storage.sign("t", "v.mp4", 5) for storage in storages}) == 1
    first, second = _machines(s3_env, prefix, tmp_path)
    assert first.sign("t", "v.mp4", 5) == storages[0].sign("t", "v.mp4", 5)
    restarted = open_storage(_settings(s3_env, prefix, tmp_path / "api"))
    assert restarted.sign("t", "v.mp4", 5) == first.sign("t", "v.mp4", 5)
    # a secret the operator gives wins, and signs as LocalStorage does
    given = open_storage(_settings(s3_env, prefix, tmp_path / "given", signing_secret="s3cret"))
    local = LocalStorage(Settings(data_dir=tmp_path / "local", signing_secret="s3cret"))
    assert given.sign("t", "v.mp4", 5) == local.sign("t", "v.mp4", 5)


def test_uploads_are_whole_or_nothing_and_readable_anywhere(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    api, other_api = _machines(s3_env, prefix, tmp_path)
    pending = api.new_upload("upl_kept")
    pending.file.write(b"half ")
    assert "uploads/upl_kept/data" not in _keys(s3_env, prefix)  # nothing visible before commit
    pending.file.write(b"and whole")
    pending.commit()
    target = tmp_path / "copy"
    other_api.copy_upload("upl_kept", target)  # the API process that stages the task may be another one
    assert target.read_bytes() == b"half and whole"

    dropped = api.new_upload("upl_dropped")
    dropped.file.write(b"bytes")
    dropped.discard()
    assert "uploads/upl_dropped/data" not in _keys(s3_env, prefix)
    assert list((api.root / "uploads").iterdir()) == []  # no local partial either
    with pytest.raises(FileNotFoundError):
        other_api.copy_upload("upl_dropped", target)

    api.delete_upload("upl_kept")
    with pytest.raises(FileNotFoundError):
        other_api.copy_upload("upl_kept", target)


def test_the_sweep_deletes_by_age(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    api, worker = _machines(s3_env, prefix, tmp_path, output_ttl_s=100, upload_ttl_s=50, task_timeout_s=1000)
    settings = _settings(s3_env, prefix, tmp_path / "api", output_ttl_s=100, upload_ttl_s=50, task_timeout_s=1000)
    for task in ("task_a", "task_b"):
        path = worker.output_path(task)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"mp4")
        worker.store_output(task, path)
    upload = api.new_upload("upl_a")
    upload.file.write(b"x")
    upload.commit()
    leftover = api.output_path("task_dead", ".video.partial.mp4")  # a killed render's partial file
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    now = time.time()

    assert sweep(api, settings, now=now) == 0  # nothing is old yet
    assert sweep(api, settings, now=now + 50) == 0  # a few seconds' grace for the server's clock
    assert sweep(api, settings, now=now + 75) == 1  # the upload (50 s) but not the outputs (100 s)
    assert _keys(s3_env, prefix) == ["outputs/task_a/video.mp4", "outputs/task_b/video.mp4", "signing.key"]
    assert leftover.exists()
    assert sweep(api, settings, now=now + 2500) == 2  # outputs; local leftovers after 2x the task timeout
    assert _keys(s3_env, prefix) == ["signing.key"]
    assert not leftover.exists()


def test_an_unreachable_bucket_is_a_clear_503(s3_env: S3Server, prefix: str, tmp_path: Path) -> None:
    dead = S3Server(f"http://127.0.0.1:{free_ports(1)[0]}", s3_env.bucket, s3_env.access_key, s3_env.secret_key)
    with pytest.raises(StorageUnavailable, match="INFINITETALK_STORAGE_URL: cannot use") as caught:
        open_storage(_settings(dead, prefix, tmp_path / "start"))  # the operator hears at start, with where
    assert dead.endpoint_url in caught.value.message

    storage = open_storage(_settings(s3_env, prefix, tmp_path / "api"))
    storage.client = dead.client()  # the bucket goes away under a running process
    expires = int(time.time()) + 60
    sig = storage.sign("task_x", "video.mp4", expires)
    for call in (lambda: storage.open_signed("task_x", "video.mp4", expires=expires, sig=sig),
                 lambda: storage.copy_upload("upl_x", tmp_path / "copy"),
                 lambda: storage.open_inputs("task_x")):
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert caught.value.http_status == 503 and caught.value.retry_after
        assert s3_env.bucket not in caught.value.message and "127.0.0.1" not in caught.value.message
    storage.input_dir("task_x").mkdir(parents=True)
    (storage.input_dir("task_x") / "audio.wav").write_bytes(b"x")
    with pytest.raises(StorageUnavailable):
        storage.store_inputs("task_x")
    storage.delete_inputs("task_x")  # never raises: the task ended either way
    assert not storage.input_dir("task_x").exists()
