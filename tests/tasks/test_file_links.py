"""The links to a task's files, byte for byte: the task view's outputs, its live preview and the playlist's segments.
Links handed out before an upgrade must keep working after it, so the expected ones are built here from the
documented recipe (HMAC-SHA256 of ``task/name/expires`` with the signing secret, 32 hex digits), not by our code."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from infinitetalk.config import Settings
from infinitetalk.storage import LocalStorage
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.hls import preview_playlist
from infinitetalk.tasks.models import Task, TaskStatus, utcnow
from infinitetalk.tasks.views import task_public

SECRET = "links-test-secret"


def _link(base: str, task_id: str, name: str, expires: int) -> str:
    sig = hmac.new(SECRET.encode(), f"{task_id}/{name}/{expires}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{base}/v1/files/{task_id}/{name}?expires={expires}&sig={sig}"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, signing_secret=SECRET)


def _finished_task() -> Task:
    finished = utcnow().replace(microsecond=0)
    return Task(
        id="task_links", api_key_id=None, model="infinitetalk/image-to-video", status=TaskStatus.SUCCEEDED.value,
        request={}, local_request={}, request_hash="0" * 64, base_url="http://api.example:8000/", audio_seconds=2.0,
        billed_seconds=5, price_micros=0, charged=False, refunded=False, progress=1.0, attempts=1,
        cancel_requested=False, created_at=finished - timedelta(seconds=30), started_at=finished - timedelta(seconds=20),
        finished_at=finished, outputs={"video.mp4": {"content_type": "video/mp4", "duration_s": 2.0}},
        chunks={"segments": [["seg_00000.ts", 1.0], ["seg_00001.ts", 1.0]]})


def _expires(task: Task, settings: Settings) -> int:
    return int((task.finished_at + timedelta(seconds=settings.output_ttl_s)).replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize("public_url", [None, "https://talk.example.com/"])
def test_the_views_links_are_the_signed_file_route(tmp_path: Path, public_url: str | None) -> None:
    settings = Settings(data_dir=tmp_path, signing_secret=SECRET, public_url=public_url)
    task = _finished_task()
    view = task_public(task, storage=LocalStorage(settings), settings=settings)
    base, expires = (public_url or task.base_url).rstrip("/"), _expires(task, settings)
    assert [output.url for output in view.outputs] == [_link(base, task.id, "video.mp4", expires),
                                                       _link(base, task.id, "preview.m3u8", expires)]


@pytest.fixture
def stored_task(settings: Settings) -> Iterator[Task]:
    engine, sessions = open_database(settings)
    task = _finished_task()
    with sessions.begin() as session:
        session.add(task)
    try:
        yield task
    finally:
        engine.dispose()


def test_the_playlists_segments_are_signed_file_links(settings: Settings, stored_task: Task) -> None:
    engine, sessions = open_database(settings)
    try:
        expires = _expires(stored_task, settings)
        playlist = preview_playlist(sessions, LocalStorage(settings), settings, stored_task.id, expires=expires)
    finally:
        engine.dispose()
    links = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    base = stored_task.base_url.rstrip("/")
    assert links == [_link(base, stored_task.id, name, expires) for name in ("seg_00000.ts", "seg_00001.ts")]
