"""The URL guard and fetcher, against a real loopback HTTP server."""

from __future__ import annotations

import base64
import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infinitetalk.config import Settings
from infinitetalk.errors import FetchFailed, InputTooLarge, InvalidRequest, UrlNotAllowed
from infinitetalk.media import fetch
from infinitetalk.media.fetch import check_url, fetch_to_file, is_public

OPEN = Settings(fetch_allow_hosts=[])
LOOPBACK_ALLOWED = Settings(fetch_allow_hosts=["127.0.0.1"], fetch_read_timeout_s=1.0)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1",
        "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:10.1.2.3",
        "2002:7f00:1::1", "64:ff9b::a00:1", "2001:0:4136:e378:8000:63bf:f5ff:fffe",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x.wav",
        "http://localhost/x.wav",
        "http://10.0.0.1/x.wav",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x.wav",
        "http://[::ffff:127.0.0.1]/x.wav",
        "http://2130706433/x.wav",  # 127.0.0.1 written as one integer
        "http://0x7f.1/x.wav",
    ],
)
def test_private_urls_are_refused_before_connecting(url: str, tmp_path: Path) -> None:
    with pytest.raises(UrlNotAllowed) as info:
        fetch_to_file(url, tmp_path, kind="audio", settings=OPEN)
    assert info.value.code == "url_not_allowed" and info.value.field == "audio"
    assert "not a public address" in info.value.message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.wav", "gopher://x/"])
def test_other_schemes_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(UrlNotAllowed):
        fetch_to_file(url, tmp_path, kind="audio", settings=OPEN)


def test_loopback_server_is_refused_without_allow_list(file_server, speech_wav: Path, tmp_path: Path) -> None:
    shutil.copy(speech_wav, file_server.root / "a.wav")
    with pytest.raises(UrlNotAllowed):
        fetch_to_file(file_server.url("a.wav"), tmp_path, kind="audio", settings=OPEN)


def test_allow_listed_fetch_downloads_the_bytes(file_server, speech_wav: Path, tmp_path: Path) -> None:
    shutil.copy(speech_wav, file_server.root / "a.wav")
    got = fetch_to_file(file_server.url("a.wav"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)
    assert got.read_bytes() == speech_wav.read_bytes()
    got = fetch_to_file(file_server.url("chunked/a.wav"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)
    assert got.read_bytes() == speech_wav.read_bytes()


@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.1/x.wav", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/a.wav"],
)
def test_redirects_to_private_addresses_are_refused(file_server, speech_wav: Path, tmp_path: Path, target: str) -> None:
    """The allow-listed server is reachable, but where it redirects to is checked again."""
    shutil.copy(speech_wav, file_server.root / "a.wav")
    url = file_server.url(f"redirect?to={target.format(port=file_server.port)}")
    with pytest.raises(UrlNotAllowed):
        fetch_to_file(url, tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)


def test_redirects_are_followed_up_to_three(file_server, speech_wav: Path, tmp_path: Path) -> None:
    shutil.copy(speech_wav, file_server.root / "a.wav")
    url = file_server.url("a.wav")
    for _ in range(3):
        url = file_server.url(f"redirect?to={url}")
    assert fetch_to_file(url, tmp_path, kind="audio", settings=LOOPBACK_ALLOWED).stat().st_size > 0
    with pytest.raises(FetchFailed, match="more than 3 redirects"):
        fetch_to_file(file_server.url(f"redirect?to={url}"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)


def test_byte_cap_aborts_the_download(file_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fetch.MAX_BYTES, "image", 100_000)
    (file_server.root / "big.png").write_bytes(b"\0" * 300_000)
    dest = tmp_path / "dest"
    for path in ("big.png", "chunked/big.png"):  # declared length, then streamed without one
        with pytest.raises(InputTooLarge) as info:
            fetch_to_file(file_server.url(path), dest, kind="image", settings=LOOPBACK_ALLOWED)
        assert info.value.code == "image_too_large"
    assert list(dest.iterdir()) == []


def test_slow_server_times_out(file_server, tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="did not answer in time"):
        fetch_to_file(file_server.url("slow?s=3"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)


def test_http_errors_are_reported(file_server, tmp_path: Path) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        fetch_to_file(file_server.url("missing.wav"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)


def test_data_uri(tmp_path: Path, speech_wav: Path) -> None:
    uri = "data:audio/wav;base64," + base64.b64encode(speech_wav.read_bytes()).decode()
    assert fetch_to_file(uri, tmp_path, kind="audio", settings=OPEN).read_bytes() == speech_wav.read_bytes()
    with pytest.raises(InvalidRequest, match="no comma"):
        fetch_to_file("data:audio/wav;base64", tmp_path, kind="audio", settings=OPEN)


def test_local_paths_only_when_allowed(tmp_path: Path, speech_wav: Path) -> None:
    assert fetch_to_file(str(speech_wav), tmp_path, kind="audio", settings=OPEN, allow_local_paths=True) == speech_wav
    with pytest.raises(InvalidRequest, match="not a file path"):
        fetch_to_file(str(speech_wav), tmp_path, kind="audio", settings=OPEN)
    with pytest.raises(InvalidRequest) as info:
        fetch_to_file(str(tmp_path / "nope.wav"), tmp_path, kind="audio", settings=OPEN, allow_local_paths=True)
    assert info.value.code == "file_not_found"


def test_check_url_returns_the_checked_addresses() -> None:
    assert check_url("http://127.0.0.1:9/x", LOOPBACK_ALLOWED) == [ipaddress.ip_address("127.0.0.1")]


#: Fetches in a child process whose files may not grow past 64 kB (Python ignores SIGXFSZ, so the write past
#: the limit fails with EFBIG, as one on a full disk fails with ENOSPC), and says how it ended.
_FETCH_ON_A_FULL_DISK = """
import json, resource, sys
from pathlib import Path
from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError
from infinitetalk.media.fetch import fetch_to_file
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
ref, dest = sys.stdin.read(), Path(sys.argv[1])
try:
    fetch_to_file(ref, dest, kind="audio", field="audio.1", settings=Settings(fetch_allow_hosts=["127.0.0.1"]))
    print(json.dumps({"code": None}))
except InfiniteTalkError as exc:
    print(json.dumps({**exc.to_dict(), "retry_after": getattr(exc, "retry_after", None)}))
"""


@pytest.mark.integration  # a fetch in a subprocess, on a disk made full
@pytest.mark.parametrize("source", ["url", "chunked", "data"])
def test_a_full_disk_is_storage_full_and_leaves_nothing(file_server, tmp_path: Path, source: str) -> None:
    payload = b"RIFF" + bytes(300_000)
    (file_server.root / "long.wav").write_bytes(payload)
    ref = {"url": file_server.url("long.wav"), "chunked": file_server.url("chunked/long.wav"),
           "data": "data:audio/wav;base64," + base64.b64encode(payload).decode()}[source]
    dest = tmp_path / "inputs"
    done = subprocess.run([sys.executable, "-c", _FETCH_ON_A_FULL_DISK, str(dest)], input=ref,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ended = json.loads(done.stdout)
    assert (ended["code"], ended["field"], ended["retry_after"]) == ("storage_full", "audio.1", 60), ended
    assert str(tmp_path) not in ended["message"]
    assert [path for path in dest.rglob("*") if path.is_file()] == []


# --- the whole download's deadline, and the guard the API puts around each download -----------------------

class _Trickle:
    """A loopback server that sends its headers at once, then the body one byte every ``every`` seconds
    (``head=False``: it accepts the connection and sends nothing). It gives up after ``lasts`` seconds, so a
    fetch with no overall deadline would end in a finished (or broken) download instead of hanging the test."""

    def __init__(self, *, every: float = 0.2, lasts: float = 8.0, head: bool = True) -> None:
        import http.server
        import threading
        import time

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                end = time.monotonic() + lasts
                if head:
                    self.send_response(200)
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                while time.monotonic() < end:
                    try:
                        if head:
                            self.wfile.write(b"\0")
                            self.wfile.flush()
                    except OSError:  # the fetcher hung up
                        return
                    time.sleep(every)
                self.close_connection = True  # the body ends short: the fetch breaks off (no deadline needed)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/speech.wav"

    def __enter__(self) -> _Trickle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("head", [True, False], ids=["trickled-body", "silent-server"])
def test_a_download_ends_at_its_overall_deadline(tmp_path: Path, head: bool) -> None:
    # every read makes progress well within the read timeout, so only an overall deadline can end it
    import time

    settings = Settings(fetch_allow_hosts=["127.0.0.1"], fetch_read_timeout_s=30, fetch_total_timeout_s=1.0)
    with _Trickle(head=head) as server:
        started = time.monotonic()
        with pytest.raises(FetchFailed) as info:
            fetch_to_file(server.url(), tmp_path / "in", kind="audio", field="audio.0", settings=settings)
        took = time.monotonic() - started
    assert info.value.field == "audio.0"
    assert info.value.message.startswith("audio.0: ") and "1 s" in info.value.message, info.value.message
    assert took < 5, f"the deadline was 1 s, the fetch took {took:.1f} s"
    assert [path for path in (tmp_path / "in").rglob("*") if path.is_file()] == []


def test_the_guard_is_entered_around_each_url_download_only(file_server, speech_wav: Path, tmp_path: Path) -> None:
    from contextlib import contextmanager

    (file_server.root / "speech.wav").write_bytes(speech_wav.read_bytes())
    entered: list[str] = []

    @contextmanager
    def guard():  # noqa: ANN202
        entered.append("in")
        yield
        entered.append("out")

    token = fetch.FETCH_GUARD.set(guard)
    try:
        fetch_to_file(file_server.url("speech.wav"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)
        fetch_to_file("data:audio/wav;base64,UklGRg==", tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)
    finally:
        fetch.FETCH_GUARD.reset(token)
    assert entered == ["in", "out"]  # the URL's download, not the data: URI


def test_a_refusing_guard_stops_the_download_before_it_connects(file_server, tmp_path: Path) -> None:
    from contextlib import contextmanager

    class Refused(Exception):
        pass

    @contextmanager
    def guard():  # noqa: ANN202
        raise Refused
        yield

    token = fetch.FETCH_GUARD.set(guard)
    try:
        with pytest.raises(Refused):
            fetch_to_file(file_server.url("slow?s=30"), tmp_path, kind="audio", settings=LOOPBACK_ALLOWED)
    finally:
        fetch.FETCH_GUARD.reset(token)
