"""Hostile requests against the real server: paths out of the data folder, bodies from callers with no key,
bodies over their caps, hostile names, and per-key quotas."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key, wait_until

GIB = 1024**3


def _raw(server: Server, head: str, body: bytes = b"", *, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send a request's head (and the start of its body) on a raw socket and read the status line: shows
    what the server answers before the client has sent what its headers promise."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


@pytest.fixture(scope="module")
def key(keyed_server: Server) -> dict:
    return make_key(keyed_server.data_dir, "security", balance=100.0)


def _db_files(data_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in data_dir.glob("infinitetalk.db*")}


@pytest.mark.parametrize("name", ["..", "%2e%2e", ".", "%2E%2E%2Finfinitetalk.db", "..%2F..%2Finfinitetalk.db"])
def test_key_less_put_cannot_reach_the_database(keyed_server: Server, key: dict, name: str,
                                                file_server: FileServer) -> None:
    body = b"garbage" * 1000  # sent raw: a client library would tidy the '..' away
    head = f"PUT /api/v3/media/uploads/{name} HTTP/1.1\nHost: x\nContent-Length: {len(body)}\n"
    before = _db_files(keyed_server.data_dir)
    status, answer = _raw(keyed_server, head, body)
    assert status in (404, 405), answer  # 405: a decoded '/' makes it no upload route at all
    assert set(_db_files(keyed_server.data_dir)) == set(before)
    assert b"garbage" not in b"".join(_db_files(keyed_server.data_dir).values())
    assert not (keyed_server.data_dir / "uploads" / "data").exists()
    # the store still works: a submit is accepted and charged as usual
    client = keyed_server.client(key["key"])
    task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")})
    assert task["status"] in ("queued", "running", "succeeded")


def _upload(server: Server, key: dict, filename: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/uploads", headers={"X-API-Key": key["key"]},
                      files={"file": (filename, data, "application/octet-stream")})


@pytest.mark.parametrize("filename", ["..", ".owner", "../../infinitetalk.db", ".", "data", "..\\..\\x.wav"])
def test_hostile_upload_names_are_only_names(keyed_server: Server, key: dict, filename: str,
                                             file_server: FileServer, speech_wav: Path) -> None:
    before = _db_files(keyed_server.data_dir)
    response = _upload(keyed_server, key, filename, speech_wav.read_bytes())
    assert response.status_code == 201, response.text
    upload = response.json()
    assert not upload["filename"].startswith(".") and "/" not in upload["filename"]
    assert upload["expires_at"].endswith("Z")  # a zone, or clients read the expiry in their local time
    assert set(_db_files(keyed_server.data_dir)) == set(before)  # nothing new beside the database
    client = keyed_server.client(key["key"])
    task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": upload["url"]})
    done = client.wait(task["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]


def test_non_ascii_signature_is_404(keyed_server: Server) -> None:
    response = httpx.get(f"{keyed_server.url}/v1/files/task_x/video.mp4", params={"expires": 9999999999, "sig": "é" * 32})
    assert response.status_code == 404


def test_key_less_upload_is_refused_before_its_body(keyed_server: Server) -> None:
    """A 1 GiB upload with no key: the 401 comes after 64 KiB, the rest is never read."""
    for path in ("/v1/uploads", "/api/v3/media/upload/binary", "/v1/tasks"):
        head = (f"POST {path} HTTP/1.1\nHost: x\nContent-Type: multipart/form-data; boundary=b\n"
                f"Content-Length: {GIB}\n")
        status, _ = _raw(keyed_server, head, b"\0" * 65536)
        assert status == 401, path
    head = f"POST /v1/estimate HTTP/1.1\nHost: x\nContent-Type: application/json\nContent-Length: {GIB // 4}\n"
    assert _raw(keyed_server, head, b"[" * 65536)[0] == 401


def test_bodies_over_their_cap_are_refused_on_their_length(keyed_server: Server, key: dict) -> None:
    head = (f"POST /v1/tasks HTTP/1.1\nHost: x\nX-API-Key: {key['key']}\nContent-Type: application/json\n"
            f"Content-Length: {GIB}\n")
    status, answer = _raw(keyed_server, head, b"{")
    assert status == 413, answer
    head = (f"POST /v1/uploads HTTP/1.1\nHost: x\nX-API-Key: {key['key']}\n"
            f"Content-Type: multipart/form-data; boundary=b\nContent-Length: {4 * GIB}\n")
    assert _raw(keyed_server, head, b"--b\r\n")[0] == 413


def _endless(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        sent += 1 << 20
        yield b" " * (1 << 20)


def test_chunked_json_is_counted_while_it_streams(keyed_server: Server, key: dict) -> None:
    """No Content-Length (chunked): the bytes are counted and the body refused past its cap."""
    try:
        response = httpx.post(f"{keyed_server.url}/v1/tasks", headers={"X-API-Key": key["key"],
                              "Content-Type": "application/json"}, content=_endless(GIB), timeout=60)
    except httpx.WriteError:  # the server answered and closed while we were still sending: refused early
        return
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "input_too_large"


def test_upload_quota_is_429_with_retry_after(tmp_path: Path) -> None:
    key = make_key(tmp_path, "quota")
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_MAX_UPLOADS_PER_KEY": "2",
           "INFINITETALK_MAX_UPLOAD_BYTES_PER_KEY": str(3 * 2**20)}
    with Server(tmp_path, env=env) as server:
        assert _upload(server, key, "a.wav", b"x" * 1000).status_code == 201
        big = _upload(server, key, "big.wav", b"x" * (4 * 2**20))
        assert big.status_code == 429, big.text
        assert big.json()["error"]["code"] == "upload_quota_exceeded"
        assert int(big.headers["Retry-After"]) >= 1
        assert _upload(server, key, "b.wav", b"x" * 1000).status_code == 201
        third = _upload(server, key, "c.wav", b"x" * 1000)
        assert third.status_code == 429 and int(third.headers["Retry-After"]) > 60
        assert len(list((tmp_path / "uploads").iterdir())) == 2  # the refused ones left nothing


def test_queued_tasks_per_key_are_capped(tmp_path: Path, file_server: FileServer) -> None:
    key = make_key(tmp_path, "queue", balance=100.0)
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.2",
           "INFINITETALK_MAX_QUEUED_PER_KEY": "2"}
    body = {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")}
    with Server(tmp_path, env=env) as server:
        client = server.client(key["key"])
        first = client.submit(body)
        wait_until(lambda: client.get(first["id"])["status"] == "running", timeout=60, what="the first task to run")
        client.submit(body)
        client.submit(body)
        response = httpx.post(f"{server.url}/v1/tasks", json=body, headers={"X-API-Key": key["key"]})
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "queue_limited"
        assert "Retry-After" in response.headers
