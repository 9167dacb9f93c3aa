"""`infinitetalk serve` on S3 storage (SeaweedFS's gateway on loopback), with its in-process workers: uploads,
inputs and outputs live in the bucket, the output URL redirects to a presigned one and the video plays, and once
it expires our URL answers 410 and the sweep deletes the object."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from api_servers import FileServer, Server, make_key, wait_until
from services import S3Server

pytestmark = pytest.mark.slow

TTL_S = 10


def _assert_plays(path: Path) -> None:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert container.streams.audio, "the speech must be muxed in"
        assert sum(1 for _ in container.decode(video=0)) / video.average_rate >= 1.5


@pytest.fixture
def s3_server(tmp_path: Path, s3_endpoint: S3Server) -> Iterator[tuple[Server, str]]:
    """A keyed server whose storage is a fresh prefix of the test bucket; yields it and the prefix."""
    prefix = f"e2e/{secrets.token_hex(6)}"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        "INFINITETALK_STORAGE_URL": f"s3://{s3_endpoint.bucket}/{prefix}",
        "INFINITETALK_S3_ENDPOINT_URL": s3_endpoint.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_endpoint.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_endpoint.secret_key,
        "AWS_DEFAULT_REGION": s3_endpoint.region,
        "INFINITETALK_ENGINE": "instant",
        "INFINITETALK_OUTPUT_TTL_S": str(TTL_S),
        "INFINITETALK_SWEEP_INTERVAL_S": "0.5",
    }
    with Server(data_dir, env=env) as server:
        yield server, prefix


def _keys(s3: S3Server, prefix: str) -> list[str]:
    answer = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix + "/")
    return sorted(item["Key"].removeprefix(prefix + "/") for item in answer.get("Contents", []))


def test_a_task_on_s3_storage(s3_server: tuple[Server, str], s3_endpoint: S3Server, file_server: FileServer,
                              grace_hopper_path: Path, tmp_path: Path) -> None:
    server, prefix = s3_server
    key = make_key(server.data_dir, "fleet")
    client = server.client(key["key"])

    upload = client.upload(grace_hopper_path)
    assert f"uploads/{upload['id']}/data" in _keys(s3_endpoint, prefix)
    task = client.submit({"image": upload["id"], "audio": file_server.url("short.wav")})
    done = client.wait(task["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]

    # the output is in the bucket; the task's inputs went with its end; this machine keeps no copies
    assert f"outputs/{task['id']}/video.mp4" in _keys(s3_endpoint, prefix)
    assert not [name for name in _keys(s3_endpoint, prefix) if name.startswith("inputs/")]
    scratch = server.data_dir / "s3-scratch"
    assert [p for p in scratch.rglob("*") if p.is_file()] == []
    assert not (server.data_dir / "outputs").exists()

    url = done["outputs"][0]["url"]
    assert url.startswith(f"{server.url}/v1/files/{task['id']}/video.mp4?")
    redirect = httpx.get(url)
    assert redirect.status_code == 307
    presigned = redirect.headers["location"]
    assert presigned.startswith(s3_endpoint.endpoint_url)
    response = httpx.get(url, follow_redirects=True, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "video/mp4"
    (tmp_path / "out.mp4").write_bytes(response.content)
    _assert_plays(tmp_path / "out.mp4")
    _assert_plays(client.download(done, tmp_path / "client.mp4"))  # the Python client follows it too
    assert httpx.get(url.replace("sig=", "sig=0")).status_code == 404  # a forged signature

    # a provider route that answers with the video itself reads it back from the bucket
    sync = httpx.post(f"{server.url}/v1/infinite-talk", headers={"x-api-key": key["key"]}, timeout=120,
                      json={"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav"),
                            "base64": True})
    assert sync.status_code == 200, sync.text[:300]
    (tmp_path / "sync.mp4").write_bytes(base64.b64decode(sync.json()["video"]))
    _assert_plays(tmp_path / "sync.mp4")

    # expiry: our URL answers 410, the sweep deletes the object, and the presigned URL stops working
    wait_until(lambda: httpx.get(url).status_code == 410, timeout=TTL_S + 30, every=0.2, what="the URL to expire")
    assert httpx.get(url).json()["error"]["code"] == "gone"
    wait_until(lambda: f"outputs/{task['id']}/video.mp4" not in _keys(s3_endpoint, prefix), timeout=30,
               every=0.2, what="the sweep to delete the output")
    assert httpx.get(presigned).status_code in (403, 404)
    later = client.get(task["id"])
    assert later["outputs"] == [] and later["outputs_expired"] is True
