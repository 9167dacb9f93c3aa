"""Start-up removes the partial files (videos, segments, checkpoints) a killed process left, and only those."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_servers import FileServer, Server, make_key, wait_until

# SQLite only: partial files on disk; the store plays no part, so a PostgreSQL pass would repeat it for nothing.
pytestmark = pytest.mark.sqlite_only


def _partials(data_dir: Path, task_id: str) -> list[Path]:
    return list((data_dir / "outputs" / task_id).glob(".*.partial*"))


def test_kill_9_leaves_no_partial_video_after_restart(tmp_path: Path, file_server: FileServer) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = make_key(data_dir, "partial", balance=1.0)
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.03"}
    server = Server(data_dir, env=env).start()
    try:
        client = server.client(key["key"])
        task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")})
        wait_until(lambda: client.get(task["id"])["progress"]["fraction"] > 0.1, timeout=60,
                   what="the task to be part-way")
        server.kill9()
    finally:
        server.stop()
    # what a kill leaves while a segment, the joined video or a checkpoint is being written (each is written in
    # a moment, so a test cannot count on killing inside one): hidden files with ".partial" in their names
    folder = data_dir / "outputs" / task["id"]
    folder.mkdir(parents=True, exist_ok=True)
    left = [folder / name for name in (".seg-00001-0f3a.partial.ts", ".video-9c1d.partial.mp4",
                                       ".checkpoint.json-k2x8.partial")]
    for path in left:
        path.write_bytes(b"\0" * 16)
    # a partial that a live process (this one) is still writing is not the dead server's to delete
    live = data_dir / "outputs" / "task_elsewhere" / ".video-live.partial.mp4"
    live.parent.mkdir(parents=True)
    with live.open("wb") as writing:
        writing.write(b"\0" * 16)
        again = Server(data_dir, env=env).start()
        try:
            assert not any(path.exists() for path in left), "the killed run's partial video is still there"
            assert live.exists()
            done = again.client(key["key"]).wait(task["id"], timeout=120)
            assert done["status"] == "succeeded"
            assert _partials(data_dir, task["id"]) == []
        finally:
            again.stop()
