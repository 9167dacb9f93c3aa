"""Fair shares between API keys: per-key caps on open event streams, held waits and input downloads (429 with
Retry-After past them, freed when released or when the client hangs up), a rate for estimates that download
URLs, slow input URLs that cannot starve other keys, and a revoked key's open streams and waits ended.

Requests are sent by hand on their own sockets (``Raw``) where a test must hold one open, see whether it has
been answered yet, or hang up."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key, settings_for, wait_until

CAPS = {"streams": 3, "waits": 3, "fetches": 2}
ESTIMATES_PER_MINUTE = 48
#: Requests sent at once where a cap must hold under a race.
RACERS = 40
#: What "answered at once" means here: generous, so a loaded CI machine does not fail it, yet far below what
#: the abuse would cost without the caps (a 300 s wait, a read that never ends).
PROMPT_S = 5.0


@pytest.fixture(scope="module")
def fair_server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[Server]:
    """Keys required, small caps; the one render thread sleeps 2 s a frame, so tasks stay unfinished."""
    env = {
        "INFINITETALK_ENGINE": "instant",
        "INFINITETALK_INSTANT_FRAME_DELAY_S": "2",
        "INFINITETALK_WORKERS": "1",
        "INFINITETALK_MAX_STREAMS_PER_KEY": str(CAPS["streams"]),
        "INFINITETALK_MAX_WAITS_PER_KEY": str(CAPS["waits"]),
        "INFINITETALK_MAX_FETCHES_PER_KEY": str(CAPS["fetches"]),
        "INFINITETALK_ESTIMATES_PER_MINUTE": str(ESTIMATES_PER_MINUTE),
        "INFINITETALK_KEY_CACHE_S": "0.5",
    }
    with Server(tmp_path_factory.mktemp("fair-data"), env=env) as server:
        yield server


class Raw:
    """One HTTP/1.1 request on a socket of its own, read by hand."""

    #: every one made in the test, closed after it (``_close_raw_requests``)
    made: list[Raw] = []

    def __init__(self, server: Server, method: str, path: str, key: str, *headers: str, body: bytes = b"") -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Authorization: Bearer {key}",
                 f"Content-Length: {len(body)}", *headers]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        self.data = b""
        self.closed = False
        Raw.made.append(self)

    def answered(self) -> bool:
        """Whether the answer's head has arrived (never blocks)."""
        while not self.closed and select.select([self.sock], [], [], 0)[0]:
            chunk = self.sock.recv(65536)
            self.data += chunk
            self.closed = not chunk
        return b"\r\n\r\n" in self.data

    def read_until(self, marker: bytes, timeout: float) -> bool:
        """Read until ``marker`` arrives (True) or the server closes the connection or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        try:
            while marker not in self.data and (left := deadline - time.monotonic()) > 0:
                self.sock.settimeout(left)
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.data += chunk
        except TimeoutError:
            pass
        return marker in self.data

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            field, _, value = line.partition(":")
            if field.strip().lower() == name:
                return value.strip()
        return None

    def error(self) -> dict:
        self.read_until(b"}}", timeout=10)  # the error envelope's end
        return json.loads(self.data.split(b"\r\n\r\n", 1)[1])["error"]

    def hang_up(self) -> None:
        self.sock.close()


@pytest.fixture(autouse=True)
def _close_raw_requests() -> Iterator[None]:
    yield
    while Raw.made:
        Raw.made.pop().hang_up()


def _at_once(count: int, make: Callable[[], Raw]) -> list[Raw]:
    """``count`` requests sent from as many threads, released together."""
    start = threading.Barrier(count)

    def send() -> Raw:
        start.wait()
        return make()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: send(), range(count)))


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _task(server: Server, key: str, files: FileServer) -> str:
    """An unfinished task of ``key``'s (the render thread is slow, and busy with the module's first task)."""
    body = {"image": files.url("grace_hopper.jpg"), "audio": files.url("hello.wav")}
    response = httpx.post(f"{server.url}/v1/tasks", json=body, headers=_headers(key), timeout=60)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def _refused_with(requests: list[Raw], code: str) -> None:
    for request in requests:
        assert request.status == 429, request.data[:300]
        assert request.header("retry-after") == "5"
        error = request.error()
        assert error["code"] == code and "this key has" in error["message"], error


@pytest.mark.sqlite_only
def test_event_streams_past_the_key_cap_get_429_and_free_when_closed(fair_server: Server,
                                                                      file_server: FileServer) -> None:
    key, other = make_key(fair_server.data_dir, "streams")["key"], make_key(fair_server.data_dir, "neighbour")["key"]
    task_id, others_task = _task(fair_server, key, file_server), _task(fair_server, other, file_server)
    path = f"/v1/tasks/{task_id}/events"

    streams = _at_once(RACERS, lambda: Raw(fair_server, "GET", path, key))
    wait_until(lambda: all(stream.answered() for stream in streams), timeout=30, what="every stream answered")
    assert Counter(stream.status for stream in streams) == {200: CAPS["streams"], 429: RACERS - CAPS["streams"]}
    _refused_with([stream for stream in streams if stream.status == 429], "streams_limited")
    open_ = [stream for stream in streams if stream.status == 200]
    assert all(stream.read_until(b"event: progress", timeout=PROMPT_S) for stream in open_)

    neighbour = Raw(fair_server, "GET", f"/v1/tasks/{others_task}/events", other)  # its own share
    wait_until(neighbour.answered, timeout=PROMPT_S, what="the other key's stream")
    assert neighbour.status == 200
    neighbour.hang_up()

    for stream in open_:
        stream.hang_up()  # mid-stream, between events: the server must notice without writing to it

    def a_stream_opens() -> bool:
        probe = Raw(fair_server, "GET", path, key)
        wait_until(probe.answered, timeout=PROMPT_S, what="the probe's answer")
        probe.hang_up()
        return probe.status == 200

    wait_until(a_stream_opens, timeout=PROMPT_S, every=0.2, what="the key's stream slots to be freed")


@pytest.mark.sqlite_only
def test_waits_past_the_key_cap_get_429_and_hung_up_waits_free_theirs(fair_server: Server,
                                                                     file_server: FileServer) -> None:
    key = make_key(fair_server.data_dir, "waits")["key"]
    task_id = _task(fair_server, key, file_server)
    path = f"/v1/tasks/{task_id}"

    waits = _at_once(RACERS, lambda: Raw(fair_server, "GET", path, key, "Prefer: wait=300"))
    refused_count = RACERS - CAPS["waits"]
    wait_until(lambda: sum(wait.answered() for wait in waits) >= refused_count, timeout=30,
               what=f"{refused_count} waits refused")
    held = [wait for wait in waits if not wait.answered()]
    assert len(held) == CAPS["waits"]  # the others hold on: their task runs on
    _refused_with([wait for wait in waits if wait not in held], "waits_limited")

    # a submit that asks to wait is refused before anything is stored or charged
    listed = httpx.get(f"{fair_server.url}/v1/tasks", headers=_headers(key), timeout=30).json()["data"]
    body = {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")}
    create = httpx.post(f"{fair_server.url}/v1/tasks", json=body, headers={**_headers(key), "Prefer": "wait=300"},
                        timeout=30)
    assert create.status_code == 429 and create.json()["error"]["code"] == "waits_limited", create.text
    assert httpx.get(f"{fair_server.url}/v1/tasks", headers=_headers(key), timeout=30).json()["data"] == listed

    for wait in held:
        wait.hang_up()  # not 300 s later: at once

    def a_wait_is_held() -> bool:
        probe = httpx.get(f"{fair_server.url}{path}", headers={**_headers(key), "Prefer": "wait=1"}, timeout=30)
        return probe.status_code == 200 and probe.headers.get("preference-applied") == "wait=1"

    wait_until(a_wait_is_held, timeout=PROMPT_S, every=0.2, what="the key's wait slots to be freed")


@pytest.mark.sqlite_only
def test_provider_waits_share_the_cap_answer_at_once_past_it_and_free_on_hang_up(
        fair_server: Server, file_server: FileServer) -> None:
    key = make_key(fair_server.data_dir, "runpod")["key"]
    body = json.dumps({"input": {"prompt": "a woman speaking", "size": "480p", "image": file_server.url("grace_hopper.jpg"),
                                 "audio": file_server.url("hello.wav")}}).encode()
    runsync = "/v2/infinitetalk/runsync?wait=300000"

    def tasks() -> int:
        return len(httpx.get(f"{fair_server.url}/v1/tasks", headers=_headers(key), timeout=30).json()["data"])

    held = []
    for made in range(1, CAPS["waits"] + 1):  # one after another: each downloads its inputs, within the key's cap
        held.append(Raw(fair_server, "POST", runsync, key, "Content-Type: application/json", body=body))
        wait_until(lambda made=made: tasks() == made, timeout=30, what="the job's task")  # and now it waits
    # one more job answers at once, its task running on
    started = time.monotonic()
    answer = httpx.post(f"{fair_server.url}{runsync}", content=body, timeout=30,
                        headers={**_headers(key), "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()["status"] in ("IN_QUEUE", "IN_PROGRESS"), answer.text
    assert time.monotonic() - started < PROMPT_S
    assert not any(request.answered() for request in held)

    for request in held:
        request.hang_up()
    task_id = answer.json()["id"]

    def a_wait_is_held() -> bool:
        probe = httpx.get(f"{fair_server.url}/v1/tasks/{task_id}", timeout=30,
                          headers={**_headers(key), "Prefer": "wait=1"})
        return probe.status_code == 200

    wait_until(a_wait_is_held, timeout=PROMPT_S, every=0.2, what="the provider waits' slots to be freed")


class SlowFiles:
    """A loopback file server that sends its headers at once, then one byte of the body every ``every``
    seconds, until it is closed. Counts the downloads under way."""

    def __init__(self, every: float = 1.0) -> None:
        self.stop, self.serving, self.lock = threading.Event(), 0, threading.Lock()
        files = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with files.lock:
                    files.serving += 1
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/wav")
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    while not files.stop.wait(every):
                        self.wfile.write(b"\0")
                        self.wfile.flush()
                except OSError:
                    pass
                finally:
                    self.close_connection = True
                    with files.lock:
                        files.serving -= 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.handle_error = lambda *_args: None
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://localhost:{self._server.server_port}/speech.wav"

    def close(self) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.mark.sqlite_only
def test_slow_url_estimates_of_one_key_leave_other_keys_answered(fair_server: Server,
                                                                 file_server: FileServer) -> None:
    abuser, other = make_key(fair_server.data_dir, "slow-urls")["key"], make_key(fair_server.data_dir, "poller")["key"]
    others_task = _task(fair_server, other, file_server)
    slow = SlowFiles()
    estimates = 45  # more than anyio's 40 shared threads, which these once all held
    pool = ThreadPoolExecutor(estimates)
    try:
        sent = [pool.submit(httpx.post, f"{fair_server.url}/v1/estimate", json={"audio": slow.url()},
                            headers=_headers(abuser), timeout=120) for _ in range(estimates)]
        wait_until(lambda: slow.serving >= CAPS["fetches"], timeout=30, what="the slow downloads to start")

        latencies: dict[str, list[float]] = {"poll": [], "models": [], "healthz": []}
        for _ in range(RACERS // 2):
            for name, path in (("poll", f"/v1/tasks/{others_task}"), ("models", "/v1/models"),
                               ("healthz", "/healthz")):
                started = time.monotonic()
                answer = httpx.get(f"{fair_server.url}{path}", headers=_headers(other), timeout=3 * PROMPT_S)
                latencies[name].append(time.monotonic() - started)
                assert answer.status_code == 200, answer.text
        slowest = {name: max(values) for name, values in latencies.items()}
        assert all(value < PROMPT_S for value in slowest.values()), slowest

        wait_until(lambda: sum(future.done() for future in sent) >= estimates - CAPS["fetches"], timeout=30,
                   what="the estimates past the cap to be refused")
        assert slow.serving == CAPS["fetches"]
        refused = [future.result() for future in sent if future.done()]
        assert {(answer.status_code, answer.json()["error"]["code"]) for answer in refused} == {
            (429, "fetches_limited")}
        assert all(answer.headers["retry-after"] == "5" for answer in refused)
    finally:
        slow.close()  # the held downloads break off: their estimates end (400), their slots free
        pool.shutdown(wait=True)
    broken = [future.result() for future in sent if future.result().status_code != 429]
    assert [answer.json()["error"]["field"] for answer in broken] == ["audio"] * CAPS["fetches"]


@pytest.mark.sqlite_only
def test_estimates_that_download_urls_are_rate_limited_per_key(fair_server: Server, file_server: FileServer,
                                                               speech_wav: Path) -> None:
    import base64

    key, other = make_key(fair_server.data_dir, "pricing")["key"], make_key(fair_server.data_dir, "pricing-2")["key"]
    url = {"audio": file_server.url("hello.wav")}
    with httpx.Client(base_url=fair_server.url, headers=_headers(key), timeout=30) as client:
        for _ in range(ESTIMATES_PER_MINUTE):
            answer = client.post("/v1/estimate", json=url)
            assert answer.status_code == 200, answer.text
        refused = client.post("/v1/estimate", json=url)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited", refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert f"{ESTIMATES_PER_MINUTE} inputs from URLs a minute" in refused.json()["error"]["message"]
        # an estimate that downloads nothing is not counted
        inline = {"audio": "data:audio/wav;base64," + base64.b64encode(speech_wav.read_bytes()).decode()}
        assert client.post("/v1/estimate", json=inline).status_code == 200
    assert httpx.post(f"{fair_server.url}/v1/estimate", json=url, headers=_headers(other), timeout=30).status_code == 200


def test_a_revoked_keys_open_stream_and_wait_end(fair_server: Server, file_server: FileServer) -> None:
    made = make_key(fair_server.data_dir, "revoked")
    key = made["key"]
    task_id = _task(fair_server, key, file_server)
    stream = Raw(fair_server, "GET", f"/v1/tasks/{task_id}/events", key)
    wait = Raw(fair_server, "GET", f"/v1/tasks/{task_id}", key, "Prefer: wait=300")
    assert stream.read_until(b"event: progress", timeout=30)
    assert not wait.answered()

    _revoke(fair_server.data_dir, made["id"])
    # the key cache is 0.5 s here: both end within a few of its periods, not at the task's end
    assert stream.read_until(b"event: error", timeout=PROMPT_S), stream.data[-300:]
    assert stream.read_until(b"0\r\n\r\n", timeout=PROMPT_S)  # and the stream is closed properly
    assert b'"code": "unauthorized"' in stream.data
    wait_until(wait.answered, timeout=PROMPT_S, what="the wait to end")
    assert wait.status == 401 and wait.error()["code"] == "unauthorized"


def _revoke(data_dir: Path, key_id: str) -> None:
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.keys import revoke_key

    db, sessions = open_database(settings_for(data_dir))
    try:
        with sessions.begin() as session:
            revoke_key(session, key_id=key_id)
    finally:
        db.dispose()
