"""A multipart file field is refused (413) as soon as it passes its own cap while it streams, not once the whole
request (up to ~830 MB) was read and spooled."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from api_servers import Server, make_key

from infinitetalk.schema import limits

pytestmark = pytest.mark.sqlite_only  # the form is refused before the store is asked anything

_CHUNK = 1 << 20
#: What the kernel's socket buffers and the server's read-ahead may hold beyond what the server parsed.
_IN_FLIGHT = 16 * _CHUNK


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path_factory.mktemp("field-caps")
    key = make_key(data_dir, "caps")["key"]
    with Server(data_dir, env={"INFINITETALK_ENGINE": "instant"}) as running:
        yield running, key


def _whole(answer: bytearray) -> bool:
    head, found, body = bytes(answer).partition(b"\r\n\r\n")
    lengths = [line.split(b":", 1)[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    return bool(found and lengths) and len(body) >= int(lengths[0])


def _send_form(url: str, key: str, path: str, field: str, size: int) -> tuple[int, dict, int]:
    """POST a form whose file ``field`` holds ``size`` bytes, streamed a chunk at a time (never built in memory),
    stopping once the server answers. Returns (status, body, bytes of the body sent before the answer)."""
    boundary = "capsboundary7b3e"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"big.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + size + len(tail)
    host, port = url.removeprefix("http://").split(":")
    answer = bytearray()
    answered = threading.Event()

    with socket.create_connection((host, int(port)), timeout=60) as sock:
        def read() -> None:  # until the whole answer is in (the server may keep the connection open)
            while not _whole(answer) and (chunk := sock.recv(65536)):
                answer.extend(chunk)
                if b"\r\n\r\n" in answer:
                    answered.set()
            answered.set()

        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {key}\r\nContent-Length: {length}\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sent, zeros = 0, bytes(_CHUNK)
        try:
            sock.sendall(head)
            while sent < size and not answered.is_set():
                sock.sendall(zeros[:min(_CHUNK, size - sent)])
                sent += min(_CHUNK, size - sent)
            if not answered.is_set():
                sock.sendall(tail)
        except OSError:  # the server closed the connection after its answer
            pass
        answered.wait(60)
        reader.join(60)
    status_line, _, rest = bytes(answer).partition(b"\r\n")
    _, _, body = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(body or b"{}"), sent


def test_an_audio_field_over_its_cap_is_refused_as_it_streams(server: tuple[Server, str]) -> None:
    running, key = server
    size = limits.MAX_AUDIO_BYTES + 64 * _CHUNK  # under the request's cap (~830 MB), over the field's
    status, body, sent = _send_form(running.url, key, "/v1/tasks", "audio", size)
    print(f"audio field of {size / _CHUNK:.0f} MiB: 413 after {sent / _CHUNK:.0f} MiB sent "
          f"(cap {limits.MAX_AUDIO_BYTES / _CHUNK:.0f} MiB)")
    assert status == 413, body
    assert body["error"]["code"] == "input_too_large" and body["error"]["field"] == "audio"
    assert "128 MiB" in body["error"]["message"]
    assert sent <= limits.MAX_AUDIO_BYTES + _IN_FLIGHT, f"{sent} bytes sent before the answer"


def test_an_image_field_over_its_cap_is_refused_on_the_estimate_route_too(server: tuple[Server, str]) -> None:
    running, key = server
    size = limits.MAX_IMAGE_BYTES + 40 * _CHUNK
    status, body, sent = _send_form(running.url, key, "/v1/estimate", "image", size)
    assert status == 413, body
    assert body["error"]["field"] == "image"
    assert sent <= limits.MAX_IMAGE_BYTES + _IN_FLIGHT, f"{sent} bytes sent before the answer"


def test_a_field_under_its_cap_still_reaches_the_form(server: tuple[Server, str]) -> None:
    running, key = server
    status, body, _ = _send_form(running.url, key, "/v1/uploads", "file", 2 * _CHUNK)
    assert status == 201, body
    assert body["bytes"] == 2 * _CHUNK
