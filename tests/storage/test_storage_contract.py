"""What every storage does the same way, whatever keeps the bytes: LocalStorage (one machine) and S3Storage
(SeaweedFS's S3 gateway on loopback), through the interface the task service and the workers use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from infinitetalk.errors import Gone
from infinitetalk.storage import OutputMirror, Storage


def test_a_task_round_trip(storage: Storage) -> None:
    staged = storage.input_dir("task_c")
    (staged / "audio").mkdir(parents=True)
    (staged / "audio" / "audio-1.wav").write_bytes(b"speech")
    storage.store_inputs("task_c")
    assert (storage.open_inputs("task_c") / "audio" / "audio-1.wav").read_bytes() == b"speech"

    rendered = storage.output_path("task_c")
    rendered.parent.mkdir(parents=True, exist_ok=True)
    rendered.write_bytes(b"video")
    storage.store_output("task_c", rendered)
    storage.delete_inputs("task_c")
    assert not storage.input_dir("task_c").exists()

    expires = int(time.time()) + 60
    sig = storage.sign("task_c", "video.mp4", expires)
    target = storage.open_signed("task_c", "video.mp4", expires=expires, sig=sig)
    data = target.read_bytes() if isinstance(target, Path) else httpx.get(target).content
    assert data == b"video"
    with storage.local_output("task_c", "video.mp4") as path:
        assert path.read_bytes() == b"video"

    assert storage.delete_expired(output_ttl_s=60, upload_ttl_s=60, stale_s=60, now=time.time() + 3600) == (1, 0)
    with pytest.raises(Gone):
        storage.open_signed("task_c", "video.mp4", expires=expires, sig=sig)


def test_an_upload_is_whole_or_nothing(storage: Storage, tmp_path: Path) -> None:
    pending = storage.new_upload("upl_contract1")
    pending.file.write(b"bytes")
    pending.commit()
    storage.copy_upload("upl_contract1", tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"bytes"
    dropped = storage.new_upload("upl_contract2")
    dropped.file.write(b"half")
    dropped.discard()
    with pytest.raises(FileNotFoundError):
        storage.copy_upload("upl_contract2", tmp_path / "copy2")
    storage.delete_upload("upl_contract1")
    with pytest.raises(FileNotFoundError):
        storage.copy_upload("upl_contract1", tmp_path / "copy")


def test_a_task_s_outputs_expire_together(storage: Storage) -> None:
    """A long render's first segments are older than the TTL before it ends: nothing of a task goes while its
    newest file is fresh (the checkpoint, rewritten per chunk; then the video), and everything goes after."""
    mirror = OutputMirror(storage, "task_l")
    folder = storage.output_path("task_l").parent
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("seg-00000.ts", "checkpoint.json"):
        (folder / name).write_bytes(name.encode())
        mirror.push(folder / name)
        assert (folder / name).exists()  # a render keeps reading its own copy
    if not storage.shared:  # a local file ages by its mtime (in a bucket, by when it was stored: see below)
        old = time.time() - 3600
        os.utime(folder / "seg-00000.ts", (old, old))
    assert storage.delete_expired(output_ttl_s=1800, upload_ttl_s=60, stale_s=60, now=time.time()) == (0, 0)
    target = folder.parent.parent / "pulled.ts"
    assert mirror.pull("seg-00000.ts", target) and target.read_bytes() == b"seg-00000.ts"
    assert storage.delete_expired(output_ttl_s=60, upload_ttl_s=60, stale_s=60, now=time.time() + 3600) == (2, 0)
    assert not mirror.pull("seg-00000.ts", target)


def test_bucket_outputs_expire_by_their_task_s_newest_object() -> None:
    from datetime import UTC, datetime

    from infinitetalk.storage.s3 import _expired

    def item(key: str, when: float) -> dict:
        return {"Key": key, "LastModified": datetime.fromtimestamp(when, UTC)}

    items = [item("p/outputs/a/seg-00000.ts", 100), item("p/outputs/a/checkpoint.json", 900),
             item("p/outputs/b/video.mp4", 100), item("p/outputs/b/seg-00000.ts", 200)]
    assert _expired(iter(items), 500, by_folder=True) == ["p/outputs/b/video.mp4", "p/outputs/b/seg-00000.ts"]
    assert _expired(iter(items), 500, by_folder=False) == [i["Key"] for i in items if i["Key"] != "p/outputs/a/checkpoint.json"]
