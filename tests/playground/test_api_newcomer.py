"""Rough edges a new user hit with the HTTP API (issue 13), against the real server on loopback: started with
the allow-list written as a comma-separated list, keys required, the instant engine (the engine is not what
these tests measure)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_servers import FileServer, Server, make_key
from PIL import Image

from infinitetalk.media.video import Mp4Writer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("newcomer-data")
    make_key(data_dir, "bootstrap", balance=0)
    # the form a person types; it crashed `serve` with a settings parse error before
    with Server(data_dir, env={"INFINITETALK_ENGINE": "instant"}, allow_hosts="127.0.0.1,localhost") as running:
        yield running


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, short_speech_wav: Path,
          grace_hopper_path: Path) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("newcomer-files")
    (root / "short.wav").write_bytes(short_speech_wav.read_bytes())
    (root / "grace.jpg").write_bytes(grace_hopper_path.read_bytes())
    with Image.open(grace_hopper_path) as portrait:
        frame = np.asarray(portrait.convert("RGB").resize((256, 300)))
    with Mp4Writer(root / "clip.mp4", width=256, height=300, fps=25) as writer:
        for _ in range(25):
            writer.write(frame)
    with FileServer(root) as served:
        yield served


def auth(key: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {key['key']}"}


def test_start_up_line_says_where_the_data_is_and_comma_hosts_work(server: Server, files: FileServer) -> None:
    assert f"data folder {server.data_dir.resolve()}, database sqlite:///{server.data_dir.resolve()}" in server.log()
    key = make_key(server.data_dir, "hosts", balance=5)
    made = httpx.post(f"{server.url}/v1/tasks", headers=auth(key),
                      json={"image": files.url("grace.jpg"), "audio": files.url("short.wav")})
    assert made.status_code == 202, made.text


def test_video_alone_means_video_to_video(server: Server, files: FileServer) -> None:
    key = make_key(server.data_dir, "dubbing", balance=5)
    made = httpx.post(f"{server.url}/v1/tasks", headers=auth(key),
                      json={"video": files.url("clip.mp4"), "audio": files.url("short.wav")})
    assert made.status_code == 202, made.text
    assert made.json()["model"] == "infinitetalk/video-to-video"


def test_models_lists_what_the_server_offers(server: Server) -> None:
    key = make_key(server.data_dir, "models", balance=1)
    listed = httpx.get(f"{server.url}/v1/models", headers=auth(key))
    assert listed.status_code == 200, listed.text
    models = {model["id"]: model for model in listed.json()["data"]}
    assert set(models) == {"infinitetalk/image-to-video", "infinitetalk/video-to-video"}
    image = models["infinitetalk/image-to-video"]
    assert image["mode"] == "image-to-video" and image["engine"] == "instant" and image["max_speakers"] == 2
    assert [(r["resolution"], r["square_size"], r["usd_per_second"]) for r in image["resolutions"]] == [
        ("480p", "640x640", 0.03), ("576p", "768x768", 0.045), ("720p", "960x960", 0.06)]
    assert image["min_billed_seconds"] == 5 and image["max_audio_seconds"] == 600
    assert "video" in models["infinitetalk/video-to-video"]["inputs"]
    limited = make_key(server.data_dir, "limited", models=("infinitetalk/image-to-video",))
    only = httpx.get(f"{server.url}/v1/models", headers=auth(limited)).json()["data"]
    assert [model["id"] for model in only] == ["infinitetalk/image-to-video"]
    assert httpx.get(f"{server.url}/v1/models").status_code == 401


def test_an_upload_works_as_documented_everywhere(server: Server, short_speech_wav: Path,
                                                  grace_hopper_path: Path) -> None:
    key, other = make_key(server.data_dir, "uploader", balance=5), make_key(server.data_dir, "someone else")
    with short_speech_wav.open("rb") as audio_file, grace_hopper_path.open("rb") as image_file:
        audio = httpx.post(f"{server.url}/v1/uploads", headers=auth(key), files={"file": audio_file}).json()
        image = httpx.post(f"{server.url}/v1/uploads", headers=auth(key), files={"file": image_file}).json()

    # its URL answers GET (for its owner; another key sees nothing)
    shown = httpx.get(audio["url"], headers=auth(key))
    assert shown.status_code == 200 and shown.json() == audio
    hidden = httpx.get(audio["url"], headers=auth(other))
    assert hidden.status_code == 404 and "upload the file again" in hidden.json()["error"]["message"]

    # the bare id, upload://id and the URL are all inputs, for a task and for a price
    for audio_ref, image_ref in ((audio["id"], image["id"]), (f"upload://{audio['id']}", image["url"])):
        priced = httpx.post(f"{server.url}/v1/estimate", headers=auth(key), json={"audio": audio_ref})
        assert priced.status_code == 200, priced.text
        made = httpx.post(f"{server.url}/v1/tasks", headers=auth(key), json={"image": image_ref, "audio": audio_ref})
        assert made.status_code == 202, made.text

    # and in a provider-compatible route, with that provider's key header
    segmind = httpx.post(f"{server.url}/v2/infinite-talk", headers={"x-api-key": key["key"]},
                         json={"image": image["url"], "audio": audio["id"]})
    assert segmind.status_code == 200, segmind.text
    assert segmind.json()["request_id"]


def test_estimate_takes_multipart_and_keeps_no_file(server: Server, short_speech_wav: Path) -> None:
    key = make_key(server.data_dir, "multipart", balance=1)
    uploads = server.data_dir / "uploads"
    before = sorted(uploads.rglob("*")) if uploads.exists() else []
    with short_speech_wav.open("rb") as audio:
        priced = httpx.post(f"{server.url}/v1/estimate", headers=auth(key), files={"audio": audio},
                            data={"resolution": "720p"})
    assert priced.status_code == 200, priced.text
    assert priced.json()["resolution"] == "720p" and priced.json()["price"] == pytest.approx(5 * 0.06)
    after = sorted(uploads.rglob("*")) if uploads.exists() else []
    assert after == before  # the form's file was only priced, not kept as an upload
