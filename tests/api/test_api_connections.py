"""Slow and silent clients cannot take the server down: a request head must come within the header timeout,
a stalled body is dropped, past max_connections the longest-silent connection makes room, and the server
raises its open-files limit at start."""

from __future__ import annotations

import contextlib
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import Server, make_key, wait_until

MAX_CONNECTIONS = 20
#: The open-files limit the server inherits; the stalled connections below outnumber it.
INHERITED_SOFT_LIMIT = 512
STALLED = 600

# SQLite only: connection limits and timeouts live in the HTTP layer; the store is not involved, so a PostgreSQL pass would repeat it for nothing.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[tuple[Server, str]]:
    data_dir = tmp_path_factory.mktemp("guarded-data")
    key = make_key(data_dir, "guarded", balance=1.0)["key"]
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
           "INFINITETALK_HEADER_TIMEOUT_S": "2", "INFINITETALK_IDLE_TIMEOUT_S": "2"}
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    server = Server(data_dir, env=env)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(INHERITED_SOFT_LIMIT, hard), hard))  # what the child gets
    try:
        server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        yield server, key
    finally:
        server.stop()


def _connect(server: Server, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(first_bytes)
    sock.setblocking(False)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        while data := sock.recv(65536):
            del data  # whatever it said before closing
        return True  # b"": the server closed its end
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def test_open_files_limit_is_raised_to_the_hard_limit(guarded: tuple[Server, str]) -> None:
    server, _ = guarded
    limits = Path(f"/proc/{server.proc.pid}/limits").read_text().splitlines()
    soft, hard = next(line for line in limits if line.startswith("Max open files")).split()[3:5]
    assert soft == hard, f"soft {soft}, hard {hard}"


def test_silent_connections_beyond_the_limit_do_not_lock_out_healthz(guarded: tuple[Server, str]) -> None:
    server, _ = guarded
    stalled: list[socket.socket] = []
    try:
        for _ in range(STALLED):  # more than max_connections, and more than the inherited open-files limit
            stalled.append(_connect(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"))  # never the blank line
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        wait_until(lambda: all(_closed_by_server(sock) for sock in stalled), timeout=30,
                   what="the server to close every silent connection")
    finally:
        for sock in stalled:
            sock.close()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_a_trickled_request_head_is_cut_at_the_header_timeout(guarded: tuple[Server, str]) -> None:
    server, _ = guarded
    head = iter(b"X-Slow: " + b"a" * 10_000)
    sock = _connect(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

    def cut_off() -> bool:
        with contextlib.suppress(BlockingIOError):
            sock.send(bytes([next(head)]))  # a byte now and then: never idle, never done
        return _closed_by_server(sock)

    try:
        wait_until(cut_off, timeout=30, every=0.2, what="the trickling client to be cut off")
    except (BrokenPipeError, ConnectionResetError):
        pass  # cut off while sending
    finally:
        sock.close()


def test_a_stalled_request_body_is_dropped(guarded: tuple[Server, str]) -> None:
    server, key = guarded
    sock = _connect(server, (f"POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                             "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"image\": ").encode())
    try:
        wait_until(lambda: _closed_by_server(sock), timeout=30, what="the stalled upload to be dropped")
    finally:
        sock.close()


def test_past_the_limit_the_longest_silent_connection_makes_room(tmp_path: Path) -> None:
    # a header timeout far beyond the test: only making room can close anything here
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
           "INFINITETALK_HEADER_TIMEOUT_S": "600"}
    with Server(tmp_path, env=env) as server:
        silent = [_connect(server, b"GET /healthz HTTP/1.1\r\n") for _ in range(2 * MAX_CONNECTIONS)]
        try:
            with httpx.Client(timeout=10) as client:  # one more connection: the limit is full of silent ones
                assert client.get(f"{server.url}/healthz").status_code == 200
            made_room = len(silent) + 1 - MAX_CONNECTIONS
            wait_until(lambda: sum(_closed_by_server(sock) for sock in silent) >= made_room, timeout=30,
                       what="the excess silent connections to be closed")
            closed = [_closed_by_server(sock) for sock in silent]
            assert closed == [True] * made_room + [False] * (len(silent) - made_room), "the oldest go first"
        finally:
            for sock in silent:
                sock.close()
