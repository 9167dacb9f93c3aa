"""Long renders survive kill -9 without starting over, and can be watched while they run.

A 60 s job on the preview engine: the server is killed while it renders the 3rd chunk, started again, and
the task goes on after its last finished chunk; the video equals an uninterrupted render's frame for frame.
While it runs, its live HLS preview grows segment by segment; the final MP4 is those segments joined.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_servers import FileServer, Server, ledger, make_key, wait_until
from long_renders import SEED, decoded_audio, frame_hashes, uninterrupted

pytestmark = [pytest.mark.sqlite_only, pytest.mark.slow]


def _at(server: Server, url: str) -> str:
    """``url`` on ``server``: links name the server that took the task, and the restarted one has another port."""
    return server.url + "/" + url.split("/", 3)[3]


def _playlist(server: Server, task: dict) -> list[str] | None:
    """The segment links of the task's live preview, or None while it has none."""
    preview = next((o for o in task["outputs"] if o["name"] == "preview.m3u8"), None)
    if preview is None:
        return None
    answer = httpx.get(_at(server, preview["url"]))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    return [_at(server, line) for line in answer.text.splitlines() if line and not line.startswith("#")]


def test_kill_9_during_the_third_chunk_resumes_there(tmp_path: Path, long_job: tuple) -> None:
    image, audio, folder = long_job
    reference = uninterrupted(image, audio, folder)
    served = tmp_path / "served"
    served.mkdir()
    for source in (image, audio):
        (served / source.name).write_bytes(source.read_bytes())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = make_key(data_dir, "long", balance=100.0)
    env = {"INFINITETALK_ENGINE": "preview"}
    fractions: list[float] = []
    grown: list[int] = []

    def watch(server: Server, task_id: str, until: object) -> dict:
        client = server.client(key["key"])

        def check() -> dict | None:
            task = client.get(task_id)
            fractions.append(task["progress"]["fraction"])
            links = _playlist(server, task)
            if links is not None and (not grown or len(links) != grown[-1]):
                grown.append(len(links))
            return task if until(task) else None
        return wait_until(check, timeout=300, every=0.05, what="the render to get there")

    with FileServer(served) as files:
        server = Server(data_dir, env=env).start()
        try:
            client = server.client(key["key"])
            task = client.submit({"image": files.url(image.name), "audio": files.url(audio.name), "seed": SEED})
            running = watch(server, task["id"], lambda t: (t["progress"]["chunk"] or 0) >= 2)
            server.kill9()
        finally:
            server.stop()
        assert running["progress"]["chunks"] == 21 and running["progress"]["frames"] == 1500
        checkpoint = json.loads((data_dir / "outputs" / task["id"] / "checkpoint.json").read_text())
        kept = len(checkpoint["segments"])
        assert kept >= 2

        again = Server(data_dir, env=env).start()
        try:
            done = watch(again, task["id"], lambda t: t["status"] in ("succeeded", "failed"))
            assert done["status"] == "succeeded", done["error"]
            links = _playlist(again, done)
            video = next(o for o in done["outputs"] if o["name"] == "video.mp4")
            got = tmp_path / "video.mp4"
            got.write_bytes(httpx.get(_at(again, video["url"])).content)
            segments = []
            for n, link in enumerate(links):
                path = tmp_path / f"seg-{n}.ts"
                path.write_bytes(httpx.get(link).content)
                segments.append(path)
            log = again.log()
        finally:
            again.stop()

    # it went on after the chunks it had, not from frame 0
    assert re.search(rf"resuming after chunk {kept} of 21\b", log), log[-2000:]
    # the same video as one uninterrupted run, and exactly its segments joined
    assert frame_hashes(got) == reference
    assert [h for path in segments for h in frame_hashes(path)] == reference
    # a player feeds the segments to one decoder, one after another: MPEG-TS files joined end to end
    played = tmp_path / "played.ts"
    played.write_bytes(b"".join(path.read_bytes() for path in segments))
    joined, whole = decoded_audio(played), decoded_audio(got)
    # the same AAC packets: equal once lined up (the MP4's edit list drops the encoder's priming samples, which
    # a TS player skips by their timestamps instead)
    lag = _lag(joined, whole)
    assert 0 <= lag <= 2048 and abs(len(joined) - lag - len(whole)) <= 1024
    n = min(len(joined) - lag, len(whole))
    assert np.abs(joined[lag:lag + n] - whole[:n]).max() < 1e-4
    # the preview grew a segment at a time, and ended whole; progress never went back, across the restart too
    assert len(links) == 21 and len(grown) >= 3 and grown == sorted(grown)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # billed once
    kinds = [kind for kind, _, task_id in ledger(data_dir, key["id"])[1] if task_id == task["id"]]
    assert kinds == ["reserve"]
    # the checkpoint went with the task; the segments stay for the preview until retention
    assert not (data_dir / "outputs" / task["id"] / "checkpoint.json").exists()
    assert not list((data_dir / "outputs" / task["id"]).glob("state-*.npz"))


def _lag(longer: np.ndarray, shorter: np.ndarray) -> int:
    """Samples ``longer`` starts ahead of ``shorter`` (by the least difference over the first seconds)."""
    window = shorter[44_100:88_200]
    return min(range(0, 4096), key=lambda lag: float(np.abs(longer[44_100 + lag:88_200 + lag] - window).sum()))
