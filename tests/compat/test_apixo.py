"""APIXO: the documented request through a whole task life, the callback, failure codes and error shapes."""

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


@pytest.fixture(scope="module")
def apixo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    server, key = start_server(tmp_path_factory, "apixo")
    yield server, key
    server.stop()


def documented_body(files: FileServer, **input_overrides: object) -> dict:
    """The request body as documented (Request body -> Image-to-video), URLs served from loopback."""
    return {
        "request_type": "async",
        "input": {
            "mode": "image-to-video",
            "image_urls": [files.url("grace_hopper.jpg")],
            "audio_urls": [files.url("short.wav")],
            "prompt": "A woman speaking to the camera",
            "seed": 42,
            "resolution": "480p",
            **input_overrides,
        },
    }


def _client(server: Server, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def _poll(client: httpx.Client, task_id: str) -> tuple[dict, set[str]]:
    seen: set[str] = set()

    def ended() -> dict | None:
        response = client.get("/statusTask/infinitetalk", params={"taskId": task_id})
        assert response.status_code == 200, response.text
        body = response.json()
        seen.add(body["data"]["state"])
        return body if body["data"]["state"] in ("success", "failed") else None

    return wait_until(ended, timeout=180, every=0.3, what="the APIXO task to end"), seen


def test_documented_request_whole_life(apixo: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = apixo
    with _client(server, key["key"]) as client:
        submitted = client.post("/generateTask/infinitetalk", json=documented_body(files))
        assert submitted.status_code == 200, submitted.text
        body = submitted.json()
        assert body["code"] == 200 and isinstance(body["message"], str)
        task_id = body["data"]["taskId"]

        done, seen = _poll(client, task_id)
    assert seen <= {"pending", "processing", "success"}
    assert done["code"] == 200
    data = done["data"]
    assert data["taskId"] == task_id and data["state"] == "success"
    result = json.loads(data["resultJson"])  # a JSON *string* holding resultUrls
    assert len(result["resultUrls"]) == 1
    assert "failCode" not in data and "failMsg" not in data
    assert 1_600_000_000_000 < data["createTime"] <= data["completeTime"]  # Unix milliseconds
    assert 0 < data["costTime"] <= data["completeTime"] - data["createTime"]
    assert_playable_video(result["resultUrls"][0], tmp_path)


def test_callback_with_mask_carries_the_status_shape(apixo: tuple[Server, dict], files: FileServer,
                                                     webhook_receiver: WebhookReceiver) -> None:
    server, key = apixo
    request = documented_body(files, image_urls=[files.url("grace_hopper.jpg"), files.url("mask.png")])
    request.update(request_type="callback", callback_url=webhook_receiver.url)
    with _client(server, key["key"]) as client:
        task_id = client.post("/generateTask/infinitetalk", json=request).json()["data"]["taskId"]
        wait_until(lambda: webhook_receiver.received, timeout=180, every=0.3, what="the callback")
        status = client.get("/statusTask/infinitetalk", params={"taskId": task_id}).json()
    callback = json.loads(webhook_receiver.received[0].body)
    assert set(callback) == {"code", "message", "data"}
    assert callback["data"]["taskId"] == task_id and callback["data"]["state"] == "success"
    assert set(callback["data"]) == set(status["data"])
    assert json.loads(callback["data"]["resultJson"])["resultUrls"]


def test_failed_task_has_fail_code_and_message(apixo: tuple[Server, dict], files: FileServer) -> None:
    server, key = apixo
    with _client(server, key["key"]) as client:
        body = documented_body(files, image_urls=[files.url("noise.png")])
        task_id = client.post("/generateTask/infinitetalk", json=body).json()["data"]["taskId"]
        done, _ = _poll(client, task_id)
    data = done["data"]
    assert data["state"] == "failed"
    assert data["failCode"] == "BadRequest"  # no face: the documented code for a request that cannot work
    assert "face" in data["failMsg"]
    assert "resultJson" not in data and data["completeTime"] >= data["createTime"]


@pytest.mark.parametrize(("change", "message"), [
    ({"mode": "video-to-video"}, "input.mode must be image-to-video"),
    ({"mode": None}, "input.mode must be image-to-video"),
    ({"image_urls": []}, "input.image_urls must hold 1 or 2"),
    ({"image_urls": ["http://localhost/a.jpg"] * 3}, "input.image_urls must hold 1 or 2"),
    ({"audio_urls": ["http://localhost/a.wav"] * 2}, "input.audio_urls must hold exactly 1"),
    ({"prompt": "   "}, "input.prompt is optional, but cannot be blank if present"),
    ({"seed": 2147483648}, "input.seed must be an integer from -1 to 2147483647"),
    ({"seed": -2}, "input.seed must be an integer from -1 to 2147483647"),
    ({"resolution": "576p"}, "input.resolution must be one of 480p, 720p"),
])
def test_validation_messages(apixo: tuple[Server, dict], files: FileServer, change: dict, message: str) -> None:
    server, key = apixo
    with _client(server, key["key"]) as client:
        response = client.post("/generateTask/infinitetalk", json=documented_body(files, **change))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 400 and body["data"] is None
    assert body["message"].startswith(message), body


def test_error_codes(apixo: tuple[Server, dict], files: FileServer) -> None:
    server, key = apixo
    body = documented_body(files)
    with _client(server, None) as anonymous:
        assert anonymous.post("/generateTask/infinitetalk", json=body).status_code == 401
    with _client(server, "itk_not-a-key") as wrong:
        response = wrong.post("/generateTask/infinitetalk", json=body)
        assert response.status_code == 401 and response.json()["code"] == 401
    broke = make_key(server.data_dir, "apixo-broke", balance=0)
    with _client(server, broke["key"]) as client:
        response = client.post("/generateTask/infinitetalk", json=body)
        assert response.status_code == 402 and response.json()["code"] == 402
    with _client(server, key["key"]) as client:
        response = client.post("/generateTask/infinitetalk", json={**body, "request_type": "callback"})
        assert response.status_code == 400 and "callback_url" in response.json()["message"]
        response = client.post("/generateTask/infinitetalk", content=b"{not json",
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["code"] == 400
        response = client.get("/statusTask/infinitetalk", params={"taskId": "task_unknown"})
        assert response.status_code == 404 and response.json()["data"] is None
        response = client.post("/generateTask/no-such-model", json=body)
        assert response.status_code == 404 and response.json()["code"] == 404


@pytest.mark.parametrize("provider", ["auto", "some-named-backend"])
def test_documented_request_with_provider(apixo: tuple[Server, dict], files: FileServer, provider: str) -> None:
    """APIXO's newer request carries an optional top-level ``provider`` (``auto`` or a named backend): accepted,
    and ignored (this server is the one backend); the task runs as without it."""
    server, key = apixo
    with _client(server, key["key"]) as client:
        submitted = client.post("/generateTask/infinitetalk", json={**documented_body(files), "provider": provider})
        assert submitted.status_code == 200, submitted.text
        done, _ = _poll(client, submitted.json()["data"]["taskId"])
    assert done["data"]["state"] == "success"
    assert json.loads(done["data"]["resultJson"])["resultUrls"]
