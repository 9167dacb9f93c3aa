"""A finished task's live preview (its HLS segments) is deleted a short grace after the video is stored: the
playlist leaves the task's outputs, and its URL and its segments' URLs answer 410 saying to fetch the video."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key, wait_until

# SQLite only: files and their URLs; the store only says when the task ended.
pytestmark = pytest.mark.sqlite_only

GRACE_S = 3


def test_a_finished_tasks_preview_goes_after_the_grace(tmp_path: Path, file_server: FileServer) -> None:
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_PREVIEW_GRACE_S": str(GRACE_S),
           "INFINITETALK_SWEEP_INTERVAL_S": "0.3"}
    key = make_key(tmp_path, "grace", balance=1.0)
    with Server(tmp_path, env=env) as server:
        client = server.client(key["key"])
        task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")})
        done = client.wait(task["id"], timeout=60)
        assert done["status"] == "succeeded", done["error"]
        urls = {output["name"]: output["url"] for output in done["outputs"]}
        assert set(urls) == {"video.mp4", "preview.m3u8"}  # within the grace, the player may finish the playlist
        folder = tmp_path / "outputs" / task["id"]
        segments = sorted(path.name for path in folder.glob("seg-*.ts"))
        assert segments
        playlist = httpx.get(urls["preview.m3u8"])
        segment_urls = [line for line in playlist.text.splitlines() if line.startswith("http")]
        assert playlist.status_code == 200 and len(segment_urls) == len(segments)

        wait_until(lambda: not list(folder.glob("seg-*.ts")), timeout=30, what="the sweep to delete the segments")
        assert (folder / "video.mp4").is_file()  # kept until the output TTL
        later = client.get(task["id"])
        assert [output["name"] for output in later["outputs"]] == ["video.mp4"]
        for url in (urls["preview.m3u8"], segment_urls[0]):
            gone = httpx.get(url)
            assert gone.status_code == 410, gone.text
            assert gone.json()["error"]["code"] == "gone" and "video" in gone.json()["error"]["message"]
        assert httpx.get(urls["video.mp4"]).status_code == 200
