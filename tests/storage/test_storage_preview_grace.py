"""A finished task's live-preview segments go ``preview_grace_s`` after its video was stored, in every storage
(LocalStorage, S3Storage on SeaweedFS's gateway): the video is not kept twice until the output TTL, and a
segment's URL then answers 410 with what to fetch instead."""

from __future__ import annotations

import time

import pytest

from infinitetalk.errors import Gone
from infinitetalk.storage import OutputMirror, Storage

DAY = 24 * 3600


def _render(storage: Storage, task_id: str, *, video: bool) -> None:
    """What a render stores: its segments (kept beside it, as a render does), then the video when it finished."""
    mirror = OutputMirror(storage, task_id)
    folder = storage.output_path(task_id).parent
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("seg-00000.ts", "seg-00001.ts"):
        (folder / name).write_bytes(name.encode())
        mirror.push(folder / name)
    if video:
        storage.output_path(task_id).write_bytes(b"video")
        storage.store_output(task_id, storage.output_path(task_id))


def _open(storage: Storage, task_id: str, name: str) -> object:
    expires = int(time.time()) + 3600
    return storage.open_signed(task_id, name, expires=expires, sig=storage.sign(task_id, name, expires))


def test_a_finished_tasks_segments_go_after_the_grace(storage: Storage) -> None:
    _render(storage, "task_done", video=True)
    _render(storage, "task_running", video=False)  # no video yet: its segments are the only preview
    sweep = {"output_ttl_s": 7 * DAY, "upload_ttl_s": DAY, "stale_s": DAY, "preview_grace_s": 300}
    assert storage.delete_expired(now=time.time() + 60, **sweep) == (0, 0)  # within the grace
    _open(storage, "task_done", "seg-00000.ts")

    assert storage.delete_expired(now=time.time() + 3600, **sweep) == (2, 0)
    with pytest.raises(Gone) as gone:
        _open(storage, "task_done", "seg-00001.ts")
    assert "video" in gone.value.message and "segment" in gone.value.message
    assert _open(storage, "task_done", "video.mp4")  # the video stays until the TTL
    _open(storage, "task_running", "seg-00000.ts")
    assert storage.delete_expired(now=time.time() + 3600, **sweep) == (0, 0)  # nothing more to find


def test_without_a_grace_segments_stay_until_the_ttl(storage: Storage) -> None:
    _render(storage, "task_kept", video=True)
    assert storage.delete_expired(output_ttl_s=7 * DAY, upload_ttl_s=DAY, stale_s=DAY, now=time.time() + 3600) == (0, 0)
    _open(storage, "task_kept", "seg-00000.ts")
