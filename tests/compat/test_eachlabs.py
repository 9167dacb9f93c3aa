"""EachLabs: the documented video-to-video example and our image-to-video slug through whole predictions,
the webhook, its 100/min + 10-concurrent limits (configurable), and error shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, WebhookReceiver, make_key, wait_until
from compat_servers import start_server
from media_checks import assert_playable_video

pytestmark = pytest.mark.slow

#: Low limits on this test server, so the 429s can be reached in a few requests.
ENV = {"INFINITETALK_EACHLABS_CREATES_PER_MINUTE": "6", "INFINITETALK_EACHLABS_MAX_CONCURRENT": "2"}


@pytest.fixture(scope="module")
def eachlabs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    server, key = start_server(tmp_path_factory, "eachlabs", env=ENV)
    yield server, key
    server.stop()


def documented_body(files: FileServer) -> dict:
    """The documented example request, its two storage.googleapis.com URLs replaced by loopback ones."""
    return {"model": "infinitalk-video-to-video",
            "input": {"video": files.url("portrait.mp4"), "audio": files.url("short.wav")}}


def image_body(files: FileServer) -> dict:
    return {"model": "infinitalk-image-to-video",
            "input": {"image": files.url("grace_hopper.jpg"), "audio": files.url("short.wav"), "resolution": "480p"}}


def _create(server: Server, key: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/prediction/", json=body, headers={"X-API-Key": key}, timeout=60)


def _finished(server: Server, key: str, prediction_id: str) -> dict:
    def ended() -> dict | None:
        body = httpx.get(f"{server.url}/v1/prediction/{prediction_id}", headers={"X-API-Key": key}).json()
        assert body["status"] in ("processing", "success", "error"), body
        return body if body["status"] != "processing" else None

    return wait_until(ended, timeout=240, every=0.3, what="the prediction to end")


def _whole_life(server: Server, key: str, body: dict, tmp_path: Path) -> None:
    created = _create(server, key, body)
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "success"
    prediction_id = created.json()["predictionID"]
    done = _finished(server, key, prediction_id)
    assert done["status"] == "success", done
    assert done["predictionID"] == prediction_id
    assert done["metrics"]["predict_time"] > 0
    assert_playable_video(done["output"], tmp_path)


def test_documented_video_to_video(eachlabs: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = eachlabs
    _whole_life(server, key["key"], documented_body(files), tmp_path)


def test_image_to_video(eachlabs: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = eachlabs
    _whole_life(server, key["key"], image_body(files), tmp_path)


def test_webhook(eachlabs: tuple[Server, dict], files: FileServer, webhook_receiver: WebhookReceiver) -> None:
    server, key = eachlabs
    good = _create(server, key["key"], {**image_body(files), "webhook_url": webhook_receiver.url}).json()
    bad_body = image_body(files)
    bad_body["input"]["image"] = files.url("noise.png")
    bad = _create(server, key["key"], {**bad_body, "webhook_url": webhook_receiver.url}).json()
    wait_until(lambda: len(webhook_receiver.received) >= 2, timeout=240, every=0.3, what="two webhooks")
    hooks = {hook["exec_id"]: hook for hook in (json.loads(r.body) for r in webhook_receiver.received)}
    assert set(hooks[good["predictionID"]]) == {"exec_id", "status", "output", "error"}
    assert hooks[good["predictionID"]]["status"] == "succeeded" and hooks[good["predictionID"]]["error"] == ""
    assert hooks[good["predictionID"]]["output"].startswith(server.url)
    assert hooks[bad["predictionID"]]["status"] == "failed" and "face" in hooks[bad["predictionID"]]["error"]
    failed = _finished(server, key["key"], bad["predictionID"])
    assert failed["status"] == "error" and failed["message"] and failed["output"] is None


def test_limits_per_key(eachlabs: tuple[Server, dict], files: FileServer) -> None:
    server, _ = eachlabs
    key = make_key(server.data_dir, "eachlabs-limits", balance=10)["key"]
    answers = [_create(server, key, image_body(files)) for _ in range(3)]
    # 2 concurrent: the third create while two run is refused
    assert [a.status_code for a in answers[:2]] == [200, 200]
    assert answers[2].status_code == 429 and answers[2].json()["status"] == "error", answers[2].text
    for answer in answers[:2]:
        _finished(server, key, answer.json()["predictionID"])
    for _ in range(4):  # 6 creates a minute: 2 made; 4 more, one at a time
        made = _create(server, key, image_body(files))
        assert made.status_code == 200, made.text
        _finished(server, key, made.json()["predictionID"])
    over = _create(server, key, image_body(files))
    assert over.status_code == 429 and "minute" in over.json()["message"] and int(over.headers["retry-after"]) > 0


def test_error_shapes(eachlabs: tuple[Server, dict], files: FileServer) -> None:
    server, key = eachlabs
    for bad in ("", "itk_wrong"):
        response = _create(server, bad, image_body(files))
        assert response.status_code == 401 and response.json()["status"] == "error"
    body = image_body(files)
    del body["input"]["audio"]
    response = _create(server, key["key"], body)
    assert response.status_code == 400
    assert set(response.json()) == {"status", "message", "details"} and "input.audio" in response.json()["message"]
    response = _create(server, key["key"], {**image_body(files), "model": "no-such-model"})
    assert response.status_code == 404 and response.json()["status"] == "error"
    response = httpx.get(f"{server.url}/v1/prediction/task_unknown", headers={"X-API-Key": key["key"]})
    assert response.status_code == 404 and response.json()["status"] == "error"
