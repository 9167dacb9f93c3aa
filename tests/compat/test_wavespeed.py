"""WaveSpeed: its SDK unchanged (Client(base_url=...), a local-file upload, run, sync mode), the documented
request and response fields, the video-to-video and multi versions, and error shapes."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, wait_until
from compat_servers import start_server
from media_checks import assert_playable_video
from wavespeed import Client

from infinitetalk.media.audio import probe_duration

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wavespeed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    server, key = start_server(tmp_path_factory, "wavespeed")
    yield server, key
    server.stop()


def documented_body(files: FileServer) -> dict:
    """The documented curl body ({"resolution": "480p", "seed": -1}) plus its two required inputs."""
    return {"audio": files.url("short.wav"), "image": files.url("grace_hopper.jpg"), "resolution": "480p",
            "seed": -1}


def test_documented_request_and_result_fields(wavespeed: tuple[Server, dict], files: FileServer,
                                              tmp_path: Path, short_speech_wav: Path) -> None:
    server, key = wavespeed
    headers = {"Authorization": f"Bearer {key['key']}"}
    submitted = httpx.post(f"{server.url}/api/v3/wavespeed-ai/infinitetalk", json=documented_body(files),
                           headers=headers)
    assert submitted.status_code == 200, submitted.text
    created = submitted.json()
    assert created["code"] == 200 and created["message"] == "success"
    data = created["data"]
    assert data["status"] in ("created", "processing") and data["outputs"] == []
    assert data["model"] == "wavespeed-ai/infinitetalk"
    assert data["urls"]["get"] == f"{server.url}/api/v3/predictions/{data['id']}/result"
    assert data["created_at"].endswith("Z")

    def completed() -> dict | None:
        body = httpx.get(data["urls"]["get"], headers=headers).json()
        assert body["data"]["status"] in ("created", "processing", "completed"), body
        return body if body["data"]["status"] == "completed" else None

    result = wait_until(completed, timeout=180, every=0.3, what="completed")["data"]
    assert set(result) >= {"id", "model", "outputs", "urls", "has_nsfw_contents", "status", "created_at", "error",
                           "timings"}
    assert result["error"] == "" and result["timings"]["inference"] > 0
    assert result["has_nsfw_contents"] == []  # no safety checker installed: nothing claimed either way
    assert_playable_video(result["outputs"][0], tmp_path)
    # billed per second, rounded up, at least 5 s (the doc's billing rules)
    assert _billed(server, result["id"]) == max(5, math.ceil(probe_duration(short_speech_wav)))


def _billed(server: Server, task_id: str) -> int:
    return _task(server, task_id).billed_seconds


def _task(server: Server, task_id: str):  # noqa: ANN202 (a Task, imported late like the store)
    from infinitetalk.config import Settings
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import Task

    db, sessions = open_database(Settings(data_dir=server.data_dir))
    try:
        with sessions() as session:
            task = session.get(Task, task_id)
            session.expunge(task)
            return task
    finally:
        db.dispose()


def test_sdk_uploads_a_local_file_and_runs(wavespeed: tuple[Server, dict], files: FileServer,
                                           short_speech_wav: Path, grace_hopper_path: Path, tmp_path: Path) -> None:
    server, key = wavespeed
    client = Client(api_key=key["key"], base_url=server.url)
    audio_url = client.upload(str(short_speech_wav))
    with open(grace_hopper_path, "rb") as portrait:
        image_url = client.upload(portrait)
    assert audio_url.startswith(f"{server.url}/v1/uploads/upl_")
    output = client.run("wavespeed-ai/infinitetalk", {"audio": audio_url, "image": image_url, "resolution": "480p",
                                                      "seed": -1}, timeout=180, poll_interval=0.5)
    assert_playable_video(output["outputs"][0], tmp_path)


def test_sdk_sync_mode(wavespeed: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = wavespeed
    client = Client(api_key=key["key"], base_url=server.url)
    output = client.run("wavespeed-ai/infinitetalk", documented_body(files), enable_sync_mode=True, timeout=180)
    assert_playable_video(output["outputs"][0], tmp_path)


def test_multi_character(wavespeed: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = wavespeed
    client = Client(api_key=key["key"], base_url=server.url)
    output = client.run("wavespeed-ai/infinitetalk/multi", {
        "image": files.url("two_people.png"), "left_audio": files.url("short.wav"),
        "right_audio": files.url("short.wav"), "order": "left_right", "resolution": "480p", "seed": -1,
    }, timeout=180, poll_interval=0.5)
    # one after the other: the video lasts both tracks
    assert_playable_video(output["outputs"][0], tmp_path, min_seconds=4.0)


def test_video_to_video(wavespeed: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = wavespeed
    client = Client(api_key=key["key"], base_url=server.url)
    output = client.run("wavespeed-ai/infinitetalk/video-to-video", {
        "video": files.url("portrait.mp4"), "audio": files.url("short.wav"), "resolution": "480p", "seed": -1,
    }, timeout=180, poll_interval=0.5)
    assert_playable_video(output["outputs"][0], tmp_path)


def test_error_codes_and_shape(wavespeed: tuple[Server, dict], files: FileServer) -> None:
    server, key = wavespeed

    def post(path: str, body: dict, api_key: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return httpx.post(f"{server.url}/api/v3/{path}", json=body, headers=headers)

    for bad in (None, "itk_wrong"):
        response = post("wavespeed-ai/infinitetalk", documented_body(files), bad)
        assert response.status_code == 401 and response.json()["code"] == 401 and response.json()["data"] is None
    response = post("wavespeed-ai/infinitetalk", {"resolution": "480p", "seed": -1}, key["key"])  # no inputs
    assert response.status_code == 400 and response.json()["message"].split(":")[0] in ("image", "audio"), response.text
    for change in ({"resolution": "576p"}, {"seed": 2**31}):
        response = post("wavespeed-ai/infinitetalk", {**documented_body(files), **change}, key["key"])
        assert response.status_code == 400 and response.json()["code"] == 400, response.text
    assert post("wavespeed-ai/no-such-model", documented_body(files), key["key"]).status_code == 404
    unknown = httpx.get(f"{server.url}/api/v3/predictions/task_unknown/result",
                        headers={"Authorization": f"Bearer {key['key']}"})
    assert unknown.status_code == 404 and unknown.json()["code"] == 404


def _fast_body(model: str, files: FileServer) -> dict:
    """Each fast route's body: the fields of its non-fast sibling (video-to-video-multi: multi's, with a video)."""
    two = {"left_audio": files.url("short.wav"), "right_audio": files.url("short.wav"), "order": "meanwhile"}
    return {
        "wavespeed-ai/infinitetalk-fast": documented_body(files),
        "wavespeed-ai/infinitetalk-fast/multi": {"image": files.url("two_people.png"), **two},
        "wavespeed-ai/infinitetalk-fast/video-to-video-multi": {"video": files.url("two_people.mp4"), **two},
    }[model] | {"resolution": "480p", "seed": -1}


@pytest.mark.parametrize("model", ["wavespeed-ai/infinitetalk-fast", "wavespeed-ai/infinitetalk-fast/multi",
                                   "wavespeed-ai/infinitetalk-fast/video-to-video-multi"])
def test_fast_routes_through_the_sdk(wavespeed: tuple[Server, dict], files: FileServer, tmp_path: Path,
                                     model: str) -> None:
    """WaveSpeed's infinitetalk-fast family: a video, the model named back, our fast sampling asked for, and the
    fast rate billed (by default half the resolution's: 480p's $0.03 a second -> $0.015)."""
    server, key = wavespeed
    client = Client(api_key=key["key"], base_url=server.url)
    output = client.run(model, _fast_body(model, files), timeout=180, poll_interval=0.5)
    url = output["outputs"][0]
    assert_playable_video(url, tmp_path)
    task = _task(server, re.search(r"task_[0-9a-f]{20}", url).group())
    assert task.request["sampling"] == "fast"
    assert task.price_micros == task.billed_seconds * 15_000
    result = httpx.get(f"{server.url}/api/v3/predictions/{task.id}/result",
                       headers={"Authorization": f"Bearer {key['key']}"}).json()
    assert result["data"]["model"] == model
