"""Output links of S3 storage reached from outside the servers' network (issue 21).

In compose the processes reach the bucket at ``http://minio:9000``, a name no client resolves. Two ways out:
``INFINITETALK_S3_PUBLIC_ENDPOINT_URL`` presigns links for an address clients reach, and
``INFINITETALK_S3_LINKS=proxy`` streams the object through the API. Here the processes use SeaweedFS at
127.0.0.1 and clients are told ``localhost``; a plain httpx client downloads each link."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key
from services import S3Server

pytestmark = pytest.mark.slow


def _server(tmp_path_factory: pytest.TempPathFactory, s3: S3Server, **extra: str) -> Server:
    data_dir = tmp_path_factory.mktemp("links-data")
    return Server(data_dir, env={
        "INFINITETALK_STORAGE_URL": f"s3://{s3.bucket}/links/{secrets.token_hex(6)}",
        "INFINITETALK_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_DEFAULT_REGION": s3.region, "INFINITETALK_ENGINE": "instant", **extra})


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, short_speech_wav: Path,
          grace_hopper_path: Path) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("link-files")
    for source in (short_speech_wav, grace_hopper_path):
        (root / source.name).write_bytes(source.read_bytes())
    with FileServer(root) as server:
        yield server


def _video_url(server: Server, files: FileServer) -> str:
    client = server.client(make_key(server.data_dir, "links")["key"])
    task = client.submit({"image": files.url("grace_hopper.jpg"), "audio": files.url("short.wav")})
    done = client.wait(task["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    return next(output["url"] for output in done["outputs"] if output["name"] == "video.mp4")


def _is_mp4(body: bytes) -> bool:
    return body[4:8] == b"ftyp"


def test_presigned_links_use_the_public_endpoint(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: S3Server,
                                                 files: FileServer) -> None:
    public = s3_endpoint.endpoint_url.replace("127.0.0.1", "localhost")
    with _server(tmp_path_factory, s3_endpoint, INFINITETALK_S3_PUBLIC_ENDPOINT_URL=public) as server:
        url = _video_url(server, files)
        redirect = httpx.get(url)
        assert redirect.status_code == 307
        assert redirect.headers["location"].startswith(public + "/")
        answer = httpx.get(url, follow_redirects=True, timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        assert _is_mp4(answer.content)
        assert answer.headers["content-type"] == "video/mp4"


def test_links_served_through_the_api(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: S3Server,
                                      files: FileServer) -> None:
    with _server(tmp_path_factory, s3_endpoint, INFINITETALK_S3_LINKS="proxy") as server:
        url = _video_url(server, files)
        answer = httpx.get(url, timeout=30)  # no redirect to follow: the bucket need not be reachable
        assert answer.status_code == 200, answer.text[:300]
        assert _is_mp4(answer.content)
        assert answer.headers["content-type"] == "video/mp4"
        assert int(answer.headers["content-length"]) == len(answer.content)
        # players seek with ranges (Safari will not play an mp4 without them)
        part = httpx.get(url, headers={"Range": "bytes=4-7"}, timeout=30)
        assert part.status_code == 206
        assert part.content == b"ftyp"
        assert part.headers["content-range"] == f"bytes 4-7/{len(answer.content)}"
        # a forged signature is still refused before the bucket is asked
        assert httpx.get(url.replace("sig=", "sig=0")).status_code in (403, 404)
