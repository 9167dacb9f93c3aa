"""Bills that follow the work (issue 19): what the server can see before a render is refused at submit (400,
nothing charged or stored); a task that fails through its input before any video is made is refunded; a running
task canceled is charged for the video made, which the caller keeps, and the rest comes back."""

from __future__ import annotations

import math
import wave
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from api_servers import FileServer, Server, ledger, make_key, wait_until
from PIL import Image

from infinitetalk.client import ApiError

RATE_480P = 0.03
MIN_BILLED_S = 5


def _long_speech(speech: Path, path: Path, *, times: int) -> Path:
    """The speech ``times`` over: long enough that a task is running for many chunks."""
    with wave.open(str(speech)) as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames * times)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, speech_wav: Path, short_speech_wav: Path,
          grace_hopper_path: Path, noise_png: Path) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("billing-files")
    for source in (speech_wav, short_speech_wav, grace_hopper_path, noise_png):
        (root / source.name).write_bytes(source.read_bytes())
    Image.new("RGB", (1, 1), (200, 150, 120)).save(root / "dot.png")
    _long_speech(speech_wav, root / "long.wav", times=3)
    with FileServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[Server]:
    """Faces checked at submit (the default); the instant engine at 40 ms a frame, 72 frames a chunk."""
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.04"}
    with Server(tmp_path_factory.mktemp("billing-data"), env=env) as running:
        yield running


@pytest.fixture(scope="module")
def unchecked_server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[Server]:
    """Faces not checked at submit: the preview engine finds out when it runs."""
    env = {"INFINITETALK_ENGINE": "preview", "INFINITETALK_FACE_CHECK": "false"}
    with Server(tmp_path_factory.mktemp("billing-unchecked-data"), env=env) as running:
        yield running


def _refused(server: Server, key: dict, body: dict) -> ApiError:
    with pytest.raises(ApiError) as refused:
        server.client(key["key"]).submit(body)
    return refused.value


@pytest.mark.parametrize(("image", "extra", "field"), [
    ("dot.png", {}, "image"),  # a 1x1 picture
    ("noise.png", {}, "image"),  # a picture with no face in it
    ("grace_hopper.jpg", {"audio": ["short.wav", "short.wav"]}, "image"),  # two speakers, one face
    ("grace_hopper.jpg", {"bbox": [{"x0": 0, "y0": 0, "x1": 60, "y1": 60}]}, "bbox[0]"),  # a box beside the face
])
def test_what_cannot_render_is_refused_at_submit(server: Server, files: FileServer, image: str, extra: dict,
                                                  field: str) -> None:
    key = make_key(server.data_dir, f"refused-{image}", balance=5.0)
    body = {"image": files.url(image), "audio": ["short.wav"], **extra}  # parameters are shared by both stores
    body["audio"] = [files.url(name) for name in body["audio"]]
    error = _refused(server, key, body)
    assert (error.status, error.code, error.field) == (400, "no_face_detected", field), error
    assert "face" in error.message
    assert ledger(server.data_dir, key["id"]) == (5.0, [("top_up", 5.0, None)])  # nothing reserved, ever
    assert server.client(key["key"]).list()["data"] == []  # nothing stored


def test_failure_found_at_render_before_any_video_is_refunded(unchecked_server: Server, files: FileServer) -> None:
    key = make_key(unchecked_server.data_dir, "render-refused", balance=5.0)
    client = unchecked_server.client(key["key"])
    task = client.submit({"image": files.url("noise.png"), "audio": files.url("short.wav")})
    done = client.wait(task["id"], timeout=120)
    assert done["status"] == "failed" and done["error"]["code"] == "no_face_detected"
    assert done["progress"]["chunk"] is None  # it failed before its first chunk
    assert done["cost"]["refunded"] is True
    assert done["cost"]["refund"] == done["cost"]["price"] == MIN_BILLED_S * RATE_480P and done["cost"]["total"] == 0
    balance, rows = ledger(unchecked_server.data_dir, key["id"])
    assert balance == 5.0
    assert [kind for kind, _, _ in rows] == ["top_up", "reserve", "refund"]


def test_cancel_while_running_charges_the_video_made_and_keeps_it(server: Server, files: FileServer,
                                                                  tmp_path: Path) -> None:
    key = make_key(server.data_dir, "cancel-midway", balance=5.0)
    client = server.client(key["key"])
    task = client.submit({"image": files.url("grace_hopper.jpg"), "audio": files.url("long.wav")})
    # two chunks of 72 frames at 25 fps: 5.76 s made, more than the 5 s minimum
    wait_until(lambda: (client.get(task["id"])["progress"]["chunk"] or 0) >= 2, timeout=60, what="two chunks")
    client.cancel(task["id"])
    done = client.wait(task["id"], timeout=60)
    assert done["status"] == "canceled"

    # the caller keeps the chunks made, as one MP4 with sound, as long as what it pays for
    [video] = [output for output in done["outputs"] if output["content_type"] == "video/mp4"]
    assert video["partial"] is True
    made_s = video["duration_s"]
    assert made_s == pytest.approx(done["progress"]["video_s_done"], abs=0.01)
    assert made_s == pytest.approx(2.88 * round(made_s / 2.88), abs=0.01)  # whole chunks
    assert 5.76 <= made_s < done["cost"]["audio_seconds"]
    path = client.download(done, tmp_path / "partial.mp4")
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.streams.audio[0].codec_context.name == "aac"
        frames = sum(1 for _ in container.decode(video=0))
        seconds = float(container.duration / av.time_base)
    assert frames == round(made_s * 25)
    assert seconds == pytest.approx(made_s, abs=0.1)  # the sound is cut where the picture stops

    # the bill: max(5, whole seconds made) x the rate, the rest back; the task, the ledger and RunPod agree
    charged = round(max(MIN_BILLED_S, math.ceil(made_s)) * RATE_480P, 6)
    price = done["cost"]["price"]
    assert done["cost"] == {**done["cost"], "charged": True, "refunded": True, "total": pytest.approx(charged),
                            "refund": pytest.approx(price - charged)}
    balance, rows = ledger(server.data_dir, key["id"])
    assert [(kind, task_id) for kind, _, task_id in rows] == [("top_up", None), ("reserve", task["id"]),
                                                              ("refund", task["id"])]
    assert -rows[1][1] == pytest.approx(price) and rows[2][1] == pytest.approx(price - charged)
    assert balance == pytest.approx(5.0 - charged)
    runpod = httpx.get(f"{server.url}/v2/infinitetalk/status/{task['id']}",
                       headers={"Authorization": f"Bearer {key['key']}"}, timeout=10).json()
    assert runpod["status"] == "CANCELLED"
    assert runpod["output"]["cost"] == pytest.approx(charged)
    assert runpod["output"]["video_url"].split("?")[0] == video["url"].split("?")[0]


def test_cancel_before_the_first_chunk_is_free(server: Server, files: FileServer) -> None:
    key = make_key(server.data_dir, "cancel-early", balance=5.0)
    client = server.client(key["key"])
    task = client.submit({"image": files.url("grace_hopper.jpg"), "audio": files.url("long.wav")})
    wait_until(lambda: client.get(task["id"])["status"] == "running", timeout=60, what="the task to run")
    client.cancel(task["id"])  # 72 frames at 40 ms: ~2.9 s before the first chunk is done
    done = client.wait(task["id"], timeout=60)
    assert done["status"] == "canceled" and done["progress"]["chunk"] is None
    assert done["outputs"] == []
    assert done["cost"] == {**done["cost"], "refunded": True, "refund": done["cost"]["price"], "total": 0.0}
    assert ledger(server.data_dir, key["id"])[0] == 5.0


def test_a_face_in_the_picture_is_accepted_and_charged_in_full(server: Server, files: FileServer) -> None:
    key = make_key(server.data_dir, "accepted", balance=5.0)
    client = server.client(key["key"])
    done = client.wait(client.submit({"image": files.url("grace_hopper.jpg"),
                                      "audio": files.url("short.wav")})["id"], timeout=60)
    assert done["status"] == "succeeded"
    assert done["cost"] == {**done["cost"], "refunded": False, "refund": 0.0, "total": done["cost"]["price"]}
    assert not any(output.get("partial") for output in done["outputs"])
    assert ledger(server.data_dir, key["id"])[0] == pytest.approx(5.0 - done["cost"]["price"])


def test_provider_routes_refuse_it_too(server: Server, files: FileServer) -> None:
    key = make_key(server.data_dir, "provider-refused", balance=5.0)
    body = {"input": {"prompt": "a person talking", "image": files.url("noise.png"), "audio": files.url("short.wav"),
                      "size": "480p"}}
    answer = httpx.post(f"{server.url}/v2/infinitetalk/run", json=body, timeout=30,
                        headers={"Authorization": f"Bearer {key['key']}"})
    assert answer.status_code == 400 and "face" in answer.json()["error"], answer.text
    assert ledger(server.data_dir, key["id"]) == (5.0, [("top_up", 5.0, None)])
