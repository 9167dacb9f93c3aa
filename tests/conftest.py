"""Shared test inputs, made on the spot from real tools and files that ship in packages."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

# api_servers (the real server, file server and webhook receiver) serves the tests of every folder
sys.path.insert(0, str(Path(__file__).parent / "api"))
from services import PostgresServer, S3Server, ServiceMissing, postgres_server, redis_server, s3_server

SENTENCES = {
    "hello": "Hello there. My name is Grace, and I wrote the first compiler. Machines can learn to speak.",
    "weather": "The weather today is cold and windy, with rain in the afternoon and bright sun by the evening.",
    "short": "Open wide, then close.",
    "ships": "Seven ships sailed across the quiet northern sea before the storm arrived at dawn.",
}


def espeak(text: str, path: Path, *, voice: str = "en-us", speed: int = 150) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/install.sh (it installs it with apt-get)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir: Path) -> Path:
    """About 6 s of English speech (WAV, 22.05 kHz mono)."""
    return espeak(SENTENCES["hello"], media_dir / "hello.wav")


@pytest.fixture(scope="session")
def other_speech_wav(media_dir: Path) -> Path:
    """A different sentence, for 'scored against the wrong audio' controls."""
    return espeak(SENTENCES["weather"], media_dir / "weather.wav", voice="en-gb", speed=165)


@pytest.fixture(scope="session")
def slow_speech_wav(media_dir: Path) -> Path:
    """Another sentence, slower, for a second 'wrong audio' control."""
    return espeak(SENTENCES["ships"], media_dir / "ships.wav", speed=130)


@pytest.fixture(scope="session")
def short_speech_wav(media_dir: Path) -> Path:
    return espeak(SENTENCES["short"], media_dir / "short.wav")


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """A 512x600 JPEG portrait that ships with matplotlib."""
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="session")
def long_job(tmp_path_factory: pytest.TempPathFactory, speech_wav: Path, grace_hopper_path: Path) -> tuple:
    """(portrait, 60 s of speech, a folder) of the resume tests; the folder caches the uninterrupted render."""
    from long_renders import long_speech

    folder = tmp_path_factory.mktemp("long-job")
    return grace_hopper_path, long_speech(speech_wav, folder / "speech60.wav"), folder


@pytest.fixture(scope="session")
def astronaut_path(media_dir: Path) -> Path:
    """scikit-image's 512x512 astronaut portrait, saved as PNG."""
    import skimage.data

    path = media_dir / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def noise_png(media_dir: Path) -> Path:
    """A picture with no face in it."""
    rng = np.random.default_rng(0)
    path = media_dir / "noise.png"
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    return path


class FileServer:
    """A real HTTP server on 127.0.0.1 serving a folder, plus a few behaviours for fetch tests.

    /redirect?to=URL answers 302 to URL; /slow sleeps before answering; /chunked/NAME streams
    NAME without a Content-Length.
    """

    def __init__(self, root: Path) -> None:
        import http.server
        import threading
        import time
        import urllib.parse

        root_dir = root

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(parts.query))
                if parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query["to"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if parts.path == "/slow":
                    time.sleep(float(query.get("s", "3")))
                chunked = parts.path.startswith("/chunked/")
                name = parts.path.removeprefix("/chunked/").lstrip("/")
                target = root_dir / name
                if not name or not target.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = target.read_bytes()
                self.send_response(200)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(data), 1 << 16):
                        block = data[i : i + (1 << 16)]
                        try:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                        except (BrokenPipeError, ConnectionResetError):
                            return
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        self.wfile.write(data)
                    except (BrokenPipeError, ConnectionResetError):
                        pass

        self.root = root
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # Clients that abort a download on purpose (byte caps) reset the connection; not news.
        self.server.handle_error = lambda request, client_address: None
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def file_server(tmp_path: Path):
    """A loopback HTTP file server over a fresh folder (``server.root``)."""
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    yield server
    server.close()


# --- servers the tests start themselves (tests/services.py): Redis, PostgreSQL, SeaweedFS's S3 gateway -----

@contextlib.contextmanager
def _service(manager: contextlib.AbstractContextManager):  # noqa: ANN202
    """Enter one of services.py's servers; a missing program fails the test with how to install it (no skip)."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(manager)
        except ServiceMissing as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """redis://127.0.0.1:PORT/0 of a fresh redis-server, for the whole session."""
    with _service(redis_server()) as server:
        yield server.url


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster for the whole session (``create_database`` makes more databases on it)."""
    with _service(postgres_server()) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """postgresql+psycopg://infinitetalk@127.0.0.1:PORT/infinitetalk: an empty database."""
    return postgres.url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Server]:
    """A fresh SeaweedFS S3 gateway: ``endpoint_url``, ``bucket`` (created), ``access_key``, ``secret_key``."""
    with _service(s3_server()) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def _sqlite_outside_tests_api(request: pytest.FixtureRequest) -> None:
    """tests/api runs twice, the second time on PostgreSQL, and api_servers keeps that choice for the rest of
    the session; every other folder's servers keep the single-machine default (SQLite). Module scope, so it
    runs before the module's own server fixtures."""
    api_servers = sys.modules.get("api_servers")
    if api_servers is not None and "api" not in request.path.relative_to(Path(__file__).parent).parts[:1]:
        api_servers.use_postgres(None)


# --- the fast lane: `pytest -m "not integration and not slow"` ----------------------------------------

#: Folders whose every test runs the product as separate processes (a fleet, compose, the provider SDKs against a
#: server, a browser on the playground, the schema fuzzer).
INTEGRATION_FOLDERS = frozenset({"fleet", "playground", "deploy", "compat", "fuzz"})
#: Fixtures that start a server process: the services above, and tests/api's servers (uvicorn in a subprocess).
INTEGRATION_FIXTURES = frozenset({"redis_url", "postgres", "postgres_url", "s3_endpoint", "preview_server",
                                  "keyed_server"})
#: The parameter values of tests that run once per store, whose fixture then starts that store's server.
SERVICE_PARAMS = frozenset({"postgresql", "s3"})


def _needs_other_processes(item: pytest.Item) -> bool:
    folder = item.path.relative_to(Path(__file__).parent).parts[0]
    if folder in INTEGRATION_FOLDERS or INTEGRATION_FIXTURES.intersection(item.fixturenames):
        return True
    # the PostgreSQL or S3 half of a test parametrized over stores (its fixture asks for the server lazily)
    callspec = getattr(item, "callspec", None)
    if callspec is not None and SERVICE_PARAMS.intersection(map(str, callspec.params.values())):
        return True
    # a module that starts the API server itself, in its tests or its own fixtures
    api_servers = sys.modules.get("api_servers")
    return api_servers is not None and getattr(getattr(item, "module", None), "Server", None) is api_servers.Server


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test that needs a server process, PostgreSQL, Redis, S3 or a browser, so what
    is left (``-m "not integration"``) runs in this process on SQLite and temp folders. A test that starts a
    subprocess in its own body carries the mark itself."""
    for item in items:
        if _needs_other_processes(item):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def webhook_receiver():  # noqa: ANN201 - an api_servers.WebhookReceiver
    """A loopback receiver that records every webhook POST (answers with ``statuses`` in turn, then 200)."""
    from api_servers import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver
