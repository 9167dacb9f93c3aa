"""Segmind: the documented SDK example unchanged (only base_url, key and the media URLs differ), the v2
routes its SDK polls, the synchronous v1 route, FAILED as 422, retention and error shapes."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key, wait_until
from compat_servers import start_server
from media_checks import assert_mp4, assert_playable_video
from segmind import InferenceFailed, SegmindClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def segmind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    server, key = start_server(tmp_path_factory, "segmind")
    yield server, key
    server.stop()


@pytest.fixture
def make_client() -> Iterator:
    """SegmindClient(...) as users make it; closed after the test (the SDK has no close(), so its httpx client
    would otherwise be left to the garbage collector, a ResourceWarning)."""
    made: list[SegmindClient] = []

    def make(**kwargs: object) -> SegmindClient:
        made.append(SegmindClient(**kwargs))
        return made[-1]

    yield make
    for client in made:
        client._client.close()


def documented_payload(files: FileServer) -> dict:
    """The payload of the documented example, its two S3 URLs replaced by loopback ones."""
    return {
        "prompt": "A professional woman speaks confidently, gesturing naturally while addressing the camera.",
        "image": files.url("grace_hopper.jpg"),
        "audio": files.url("short.wav"),
        "seed": 42424242,
        "resolution": "480p",
        "fps": 25,
        "base64": False,
    }


def test_documented_sdk_example(segmind: tuple[Server, dict], files: FileServer, tmp_path: Path,
                                make_client: Callable[..., SegmindClient]) -> None:
    server, key = segmind
    client = make_client(api_key=key["key"], base_url=f"{server.url}/v1")
    job = client.submit_async("infinite-talk", **documented_payload(files))
    assert job.request_id  # available immediately
    assert job.status()["status"] in ("QUEUED", "PROCESSING", "COMPLETED")
    result = job.wait(timeout=900, interval=2.0)
    assert result["status"] == "COMPLETED"
    assert result["request_id"] == job.request_id
    assert result["metrics"]["inference_time_ms"] > 0
    assert_playable_video(result["output"], tmp_path)


def test_v2_over_http(segmind: tuple[Server, dict], files: FileServer) -> None:
    server, key = segmind
    with httpx.Client(base_url=server.url, headers={"x-api-key": key["key"]}, timeout=60) as client:
        submitted = client.post("/v2/infinite-talk", json={"image": files.url("grace_hopper.jpg"),
                                                           "audio": files.url("short.wav")})
        assert submitted.status_code == 200, submitted.text
        body = submitted.json()
        assert body["status_url"] == f"{server.url}/v2/requests/{body['request_id']}/status"
        assert body["response_url"] == f"{server.url}/v2/requests/{body['request_id']}"
        seen = set()

        def completed() -> bool:
            status = client.get(body["status_url"])
            assert status.status_code == 200, status.text
            seen.add(status.json()["status"])
            return status.json()["status"] == "COMPLETED"

        wait_until(completed, timeout=180, every=0.3, what="COMPLETED")
        result = client.get(body["response_url"]).json()
    assert seen <= {"QUEUED", "PROCESSING", "COMPLETED"}
    assert result["output"].startswith(f"{server.url}/v1/files/")
    assert result["metrics"]["billed_seconds"] == 5
    # defaults from the doc: the prompt and seed were filled in
    assert set(result) >= {"status", "output", "metrics"}


def test_failed_is_422_with_the_error(segmind: tuple[Server, dict], files: FileServer,
        make_client: Callable[..., SegmindClient]) -> None:
    server, key = segmind
    client = make_client(api_key=key["key"], base_url=f"{server.url}/v1")
    job = client.submit_async("infinite-talk", **{**documented_payload(files), "image": files.url("noise.png")})
    with pytest.raises(InferenceFailed) as failed:
        job.wait(timeout=180, interval=0.5)
    assert "face" in failed.value.detail
    raw = httpx.get(job.status_url, headers={"x-api-key": key["key"]})
    assert raw.status_code == 422 and raw.json()["status"] == "FAILED" and raw.json()["error"]
    assert httpx.get(job.response_url, headers={"x-api-key": key["key"]}).status_code == 422


def test_v1_is_synchronous(segmind: tuple[Server, dict], files: FileServer, tmp_path: Path,
                                make_client: Callable[..., SegmindClient]) -> None:
    server, key = segmind
    client = make_client(api_key=key["key"], base_url=f"{server.url}/v1", timeout=300)
    response = client.run_sync("infinite-talk", **documented_payload(files))
    assert response.headers["content-type"] == "video/mp4"
    (tmp_path / "sync.mp4").write_bytes(response.content)
    assert_mp4(tmp_path / "sync.mp4")
    encoded = client.run_sync("infinite-talk", **{**documented_payload(files), "base64": True}).json()
    (tmp_path / "b64.mp4").write_bytes(base64.b64decode(encoded["video"]))
    assert_mp4(tmp_path / "b64.mp4")


def test_results_expire_after_an_hour(segmind: tuple[Server, dict], files: FileServer,
        make_client: Callable[..., SegmindClient]) -> None:
    server, key = segmind
    client = make_client(api_key=key["key"], base_url=f"{server.url}/v1")
    job = client.submit_async("infinite-talk", **documented_payload(files))
    job.wait(timeout=180, interval=0.5)
    _age_task(server.data_dir, job.request_id, timedelta(minutes=61))  # as if it ended 61 minutes ago
    for url in (job.status_url, job.response_url):
        response = httpx.get(url, headers={"x-api-key": key["key"]})
        assert response.status_code == 404 and "expired" in response.json()["error"]


def _age_task(data_dir: Path, task_id: str, by: timedelta) -> None:
    from sqlalchemy import update

    from infinitetalk.config import Settings
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import Task

    db, sessions = open_database(Settings(data_dir=data_dir))
    try:
        with sessions.begin() as session:
            task = session.get(Task, task_id)
            session.execute(update(Task).where(Task.id == task_id).values(finished_at=task.finished_at - by))
    finally:
        db.dispose()


def test_error_codes_and_shape(segmind: tuple[Server, dict], files: FileServer) -> None:
    server, key = segmind
    payload = documented_payload(files)

    def post(path: str, api_key: str | None, body: dict) -> httpx.Response:
        headers = {"x-api-key": api_key} if api_key else {}
        return httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=60)

    for bad_key in (None, "itk_wrong"):
        response = post("/v2/infinite-talk", bad_key, payload)
        assert response.status_code == 401 and response.json()["error"]
    broke = make_key(server.data_dir, "segmind-broke", balance=0)
    response = post("/v2/infinite-talk", broke["key"], payload)
    assert response.status_code == 406 and "balance" in response.json()["error"]  # Insufficient Credits
    for change, field in (({"fps": 31}, "fps"), ({"resolution": "1080p"}, "resolution"), ({"seed": -5}, "seed")):
        response = post("/v2/infinite-talk", key["key"], {**payload, **change})
        assert response.status_code == 400 and response.json()["error"].startswith(field), response.text
    response = post("/v2/infinite-talk", key["key"], {"prompt": "x", "audio": payload["audio"]})
    assert response.status_code == 400 and "image" in response.json()["error"]
    assert post("/v2/not-a-model", key["key"], payload).status_code == 404
    assert post("/v1/not-a-model", key["key"], payload).status_code == 404
    unknown = httpx.get(f"{server.url}/v2/requests/task_unknown/status", headers={"x-api-key": key["key"]})
    assert unknown.status_code == 404 and unknown.json()["error"]
