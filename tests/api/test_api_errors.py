"""Errors and inputs, against real servers on loopback: a full disk, inputs the render could not read,
messages that keep our paths and internals to themselves, and one code vocabulary for tasks and requests."""

from __future__ import annotations

import functools
import resource
import subprocess
import threading
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy
import uvicorn
from api_servers import FileServer, Server, free_port, ledger, make_key, settings_for, store_url, wait_until

from infinitetalk.api.app import create_app
from infinitetalk.engines.base import CancelToken, EngineJob, ProgressCallback
from infinitetalk.engines.instant import InstantEngine
from infinitetalk.errors import NoFaceDetected

#: The server under test may write no file bigger than this; the long speech below is three times that.
FILE_SIZE_LIMIT = 1024 * 1024


# --- shared inputs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, short_speech_wav: Path, grace_hopper_path: Path,
           ) -> Iterator[FileServer]:
    """Good files, and files that claim to be media and are not."""
    root = tmp_path_factory.mktemp("error-inputs")
    (root / "short.wav").write_bytes(short_speech_wav.read_bytes())
    (root / "portrait.jpg").write_bytes(grace_hopper_path.read_bytes())
    (root / "notes.png").write_bytes(b"meeting notes, not a picture\n" * 20)
    (root / "notes.mp3").write_bytes(b"meeting notes, not a sound\n" * 20)
    (root / "speech-only.mp4").write_bytes(short_speech_wav.read_bytes())  # sound, but no picture
    (root / "cut-short.jpg").write_bytes(grace_hopper_path.read_bytes()[:2000])
    _long_wav(root / "long.wav", seconds=75)
    with FileServer(root) as server:
        yield server


def _long_wav(path: Path, *, seconds: float) -> None:
    """A quiet tone, 22.05 kHz 16-bit mono: about 44 kB a second."""
    rate = 22_050
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())


def _files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


# --- 12: a full disk while fetching ----------------------------------------------------------------

def _limit_file_size() -> None:
    # Runs in the server's process before exec. Python ignores SIGXFSZ, so a write past the limit fails with
    # EFBIG, as a write to a full disk fails with ENOSPC.
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


@pytest.fixture(scope="module")
def small_disk_server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[tuple[Server, dict]]:
    data_dir = tmp_path_factory.mktemp("small-disk")
    key = make_key(data_dir, "small-disk", balance=10)
    server = Server(data_dir, env={"INFINITETALK_ENGINE": "instant"})
    popen = subprocess.Popen
    subprocess.Popen = functools.partial(popen, preexec_fn=_limit_file_size)  # type: ignore[misc]
    try:
        server.start()
    finally:
        subprocess.Popen = popen  # type: ignore[misc]
    try:
        yield server, key
    finally:
        server.stop()


def test_full_disk_while_fetching_is_storage_full(small_disk_server: tuple[Server, dict], inputs: FileServer) -> None:
    server, key = small_disk_server
    headers = {"Authorization": f"Bearer {key['key']}"}
    body = {"image": inputs.url("portrait.jpg"), "audio": inputs.url("long.wav")}
    response = httpx.post(f"{server.url}/v1/tasks", json=body, headers=headers, timeout=60)

    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "storage_full" and error["field"] == "audio"
    assert "try again" in error["message"] and str(server.data_dir) not in error["message"]
    assert _files_under(server.data_dir / "inputs") == []  # nothing half-written stays behind
    assert ledger(server.data_dir, key["id"]) == (10.0, [("top_up", 10.0, None)])  # nothing charged

    # a provider's SDK is told when to come back
    apixo = httpx.post(f"{server.url}/generateTask/infinitetalk", headers=headers, timeout=60, json={
        "input": {"mode": "image-to-video", "image_urls": [inputs.url("portrait.jpg")],
                  "audio_urls": [inputs.url("long.wav")]}})
    assert apixo.status_code == 503 and apixo.headers["retry-after"] == "60", apixo.text

    # the server itself is fine: what fits still goes through
    small = httpx.post(f"{server.url}/v1/tasks", headers=headers, timeout=60,
                       json={"image": inputs.url("portrait.jpg"), "audio": inputs.url("short.wav")})
    assert small.status_code == 202, small.text


# --- 14, 15, 16: a server whose engine fails the ways real ones do --------------------------------

class FailingEngine(InstantEngine):
    """The instant engine, failing on request (the prompt says how) the way a bug under an engine would."""

    name = "failing"

    def __init__(self, data_dir: Path) -> None:
        super().__init__(frame_delay_s=0)
        self.data_dir = data_dir

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        if job.prompt == "break the database":
            engine = sqlalchemy.create_engine(f"sqlite:///{self.data_dir / 'infinitetalk.db'}")
            try:
                with engine.connect() as connection:
                    connection.execute(sqlalchemy.text("SELECT balance_micros FROM wallets WHERE owner = 'x'"))
            finally:
                engine.dispose()
        if job.prompt == "lose a file":
            (self.data_dir / "inputs" / "checkpoint.bin").read_bytes()
        if job.prompt == "find no face":
            raise NoFaceDetected("no face was found in the picture: send a photo where one face is clearly seen",
                                 field="image")
        yield from super().generate(job, progress, cancel)


class InProcessServer:
    """The app on loopback in this process (uvicorn on a thread), with an engine given as an object."""

    def __init__(self, data_dir: Path, engine: InstantEngine) -> None:
        settings = settings_for(data_dir, fetch_allow_hosts=["localhost"], engine="instant")
        self.data_dir, self.port = data_dir, free_port()
        config = uvicorn.Config(create_app(settings, engine=engine), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> InProcessServer:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=60, what="the in-process server")
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def failing_server(tmp_path_factory: pytest.TempPathFactory, api_store: str,
                   ) -> Iterator[tuple[InProcessServer, dict, dict]]:
    data_dir = tmp_path_factory.mktemp("failing")
    key = make_key(data_dir, "errors", balance=10)
    with InProcessServer(data_dir, FailingEngine(data_dir)) as server:
        yield server, key, {"Authorization": f"Bearer {key['key']}"}


def _ended(server: InProcessServer, headers: dict, task_id: str) -> dict:
    def ended() -> dict | None:
        task = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=headers, timeout=10).json()
        return task if task["status"] in ("succeeded", "failed", "canceled") else None
    return wait_until(ended, timeout=60, what=f"task {task_id} to end")


@pytest.mark.parametrize(
    ("extra", "field", "code"),
    [
        ({"image": "notes.png"}, "image", "image_unreadable"),
        ({"image": "cut-short.jpg"}, "image", "image_unreadable"),
        ({"mode": "video-to-video", "video": "speech-only.mp4"}, "video", "video_unreadable"),
        ({"mode": "video-to-video", "video": "notes.png"}, "video", "video_unreadable"),
        ({"image": "portrait.jpg", "mask": ["notes.png"]}, "mask.0", "image_unreadable"),
        ({"image": "portrait.jpg", "audio": "notes.mp3"}, "audio", "audio_unreadable"),
    ],
)
def test_inputs_the_render_cannot_read_are_refused_before_any_charge(
        failing_server: tuple[InProcessServer, dict, dict], inputs: FileServer, extra: dict, field: str,
        code: str) -> None:
    server, key, headers = failing_server
    body = {"audio": "short.wav", **extra}
    body = {name: ([inputs.url(v) for v in value] if isinstance(value, list) else
                   inputs.url(value) if name in ("image", "video", "audio") else value)
            for name, value in body.items()}
    balance_before = ledger(server.data_dir, key["id"])

    response = httpx.post(f"{server.url}/v1/tasks", json=body, headers=headers, timeout=60)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"].startswith(f"{field}: ")
    assert str(server.data_dir) not in error["message"] and "task_" not in error["message"]
    assert ledger(server.data_dir, key["id"]) == balance_before  # no reserve, no refund: nothing happened
    assert _files_under(server.data_dir / "inputs") == []


def test_provider_routes_say_the_field_by_their_name_without_our_paths(
        failing_server: tuple[InProcessServer, dict, dict], inputs: FileServer) -> None:
    server, _key, headers = failing_server

    def apixo(image_urls: list[str], audio: str) -> dict:
        return httpx.post(f"{server.url}/generateTask/infinitetalk", headers=headers, timeout=60, json={
            "input": {"mode": "image-to-video", "image_urls": [inputs.url(u) for u in image_urls],
                      "audio_urls": [inputs.url(audio)]}}).json()

    bad_audio = apixo(["portrait.jpg"], "notes.mp3")
    assert bad_audio["code"] == 400
    message = bad_audio["message"]
    assert message.startswith("input.audio_urls.0: could not read the audio ("), message
    assert str(server.data_dir) not in message and "audio-" not in message and "''" not in message

    bad_mask = apixo(["portrait.jpg", "notes.png"], "short.wav")
    assert bad_mask["code"] == 400 and bad_mask["message"].startswith("input.image_urls.1: "), bad_mask


@pytest.mark.parametrize(("prompt", "internals"), [("break the database", ("SELECT", "wallets", "sqlite")),
                                                   ("lose a file", ("checkpoint.bin", "Errno"))])
def test_engine_crashes_tell_the_client_what_to_do_and_the_log_the_rest(
        failing_server: tuple[InProcessServer, dict, dict], inputs: FileServer, caplog: pytest.LogCaptureFixture,
        prompt: str, internals: tuple[str, ...]) -> None:
    server, key, headers = failing_server
    created = httpx.post(f"{server.url}/v1/tasks", headers=headers, timeout=60, json={
        "image": inputs.url("portrait.jpg"), "audio": inputs.url("short.wav"), "prompt": prompt})
    assert created.status_code == 202, created.text
    task = _ended(server, headers, created.json()["id"])

    assert task["status"] == "failed" and task["cost"]["refunded"] is True
    error = task["error"]
    assert error["code"] == "engine_error"
    assert task["id"] in error["message"] and "Try again" in error["message"]
    for secret in (*internals, str(server.data_dir)):
        assert secret not in error["message"], error["message"]
    logged = [record for record in caplog.records if task["id"] in record.getMessage() and record.exc_info]
    assert logged and internals[0] in str(logged[0].exc_info[1]), caplog.text

    # provider routes: their code for a failure of ours, and the same words
    status = httpx.get(f"{server.url}/statusTask/infinitetalk", params={"taskId": task["id"]}, headers=headers,
                       timeout=10).json()["data"]
    assert (status["failCode"], status["failMsg"]) == ("Unknown error", error["message"])
    runpod = httpx.get(f"{server.url}/v2/infinitetalk/status/{task['id']}", headers=headers, timeout=10).json()
    assert runpod["error"] == f"InternalError: {error['message']}"


def test_task_errors_use_the_request_errors_codes(failing_server: tuple[InProcessServer, dict, dict],
                                                   inputs: FileServer) -> None:
    server, _key, headers = failing_server
    created = httpx.post(f"{server.url}/v1/tasks", headers=headers, timeout=60, json={
        "image": inputs.url("portrait.jpg"), "audio": inputs.url("short.wav"), "prompt": "find no face"})
    task = _ended(server, headers, created.json()["id"])
    assert task["status"] == "failed"
    assert task["error"]["code"] == "no_face_detected"  # as a 400 at submit would say it
    assert set(task["error"]) == {"code", "message"}

    # the provider routes keep the codes their docs give
    status = httpx.get(f"{server.url}/statusTask/infinitetalk", params={"taskId": task["id"]}, headers=headers,
                       timeout=10).json()["data"]
    assert status["failCode"] == "BadRequest"  # APIXO's code for a request that cannot work
    runpod = httpx.get(f"{server.url}/v2/infinitetalk/status/{task['id']}", headers=headers, timeout=10).json()
    assert runpod["error"].startswith("NoFaceDetected: no face was found")


def test_rows_stored_with_the_old_codes_read_in_the_new_ones(failing_server: tuple[InProcessServer, dict, dict],
                                                              inputs: FileServer) -> None:
    server, _key, headers = failing_server
    created = httpx.post(f"{server.url}/v1/tasks", headers=headers, timeout=60, json={
        "image": inputs.url("portrait.jpg"), "audio": inputs.url("short.wav"), "prompt": "find no face"})
    task_id = _ended(server, headers, created.json()["id"])["id"]
    # what a server before this change stored for the same failure
    engine = sqlalchemy.create_engine(store_url(server.data_dir))
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text("UPDATE tasks SET error_code = 'NoFaceDetected', "
                                               "error_detail = 'no_face_detected' WHERE id = :id"), {"id": task_id})
    finally:
        engine.dispose()

    task = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=headers, timeout=10).json()
    assert task["error"]["code"] == "no_face_detected"
    status = httpx.get(f"{server.url}/statusTask/infinitetalk", params={"taskId": task_id}, headers=headers,
                       timeout=10).json()["data"]
    assert status["failCode"] == "BadRequest"
