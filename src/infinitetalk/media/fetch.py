"""Turn a media reference (local path, http(s) URL, data: URI) into a local file, safely.

A URL from a caller must not become a way into our own network (SSRF). So:
- only http and https;
- the host is resolved once and refused if ANY of its addresses is not public
  (loopback, private, link-local incl. 169.254.169.254, CGNAT, multicast, reserved,
  and the IPv6 forms that embed such an IPv4 address);
- we connect to the address we checked (no second lookup an attacker could rebind),
  sending the original Host header and TLS server name;
- redirects are followed by hand, at most 3, each target checked again;
- connect/read timeouts, one deadline for the whole download (``fetch_total_timeout_s``: a server that
  trickles a byte at a time never trips a read timeout), and a byte cap enforced while streaming;
- a full disk is ``storage_full`` and leaves no partial file.
``Settings.fetch_allow_hosts`` names hosts or networks that may be reached anyway (tests,
trusted internal file servers). ``FETCH_GUARD`` lets the caller of a download (the API: one key's share of
downloads) run code around each one without this module knowing about keys.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import socket
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from pathlib import Path

import httpx

from infinitetalk.config import Settings
from infinitetalk.errors import FetchFailed, InputTooLarge, InvalidRequest, UrlNotAllowed
from infinitetalk.media.disk import disk_writes
from infinitetalk.schema import limits

MAX_BYTES = {"audio": limits.MAX_AUDIO_BYTES, "image": limits.MAX_IMAGE_BYTES, "video": limits.MAX_VIDEO_BYTES}
MAX_REDIRECTS = 3
_CHUNK = 1 << 16

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: Entered around each URL download (not data: URIs or local files), in the thread that downloads. The API
#: sets it for the request it serves (a context variable travels with the request into its thread), so that
#: a key's downloads count against its share and one past the share is refused before connecting. The CLI
#: and the workers set none.
FETCH_GUARD: ContextVar[Callable[[], AbstractContextManager[None]] | None] = ContextVar("fetch_guard", default=None)


def fetch_to_file(
    ref: str,
    dest_dir: Path,
    *,
    kind: str,
    settings: Settings,
    field: str | None = None,
    allow_local_paths: bool = False,
) -> Path:
    """Materialise ``ref`` as a file inside ``dest_dir`` and return its path.

    Local paths are only accepted when ``allow_local_paths`` (the CLI); a server must never
    read its own disk on a caller's behalf.
    """
    field = field or kind
    cap = MAX_BYTES[kind]
    with disk_writes(field):
        dest_dir.mkdir(parents=True, exist_ok=True)
    scheme = urllib.parse.urlsplit(ref).scheme.lower() if "://" in ref or ref.startswith("data:") else ""
    if scheme == "data":
        return _save(_decode_data_uri(ref, field), dest_dir, kind, cap, field)
    if scheme in ("http", "https"):
        return _download(ref, dest_dir, kind=kind, cap=cap, field=field, settings=settings)
    if scheme:
        raise UrlNotAllowed(f"{field}: '{scheme}:' URLs are not accepted; use http(s) or a data: URI", field=field)
    if not allow_local_paths:
        raise InvalidRequest(f"{field}: give an http(s) URL, a data: URI or an upload, not a file path", field=field)
    path = Path(ref).expanduser()
    if not path.is_file():
        raise InvalidRequest(f"{field}: no such file: {ref}", code="file_not_found", field=field)
    if path.stat().st_size > cap:
        raise _too_large(field, kind, cap)
    return path


def check_url(url: str, settings: Settings, *, field: str = "url") -> list[IPAddress]:
    """Check that ``url`` is http(s) and its host resolves only to allowed addresses; return them."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise UrlNotAllowed(f"{field}: only http and https URLs are accepted, got '{parts.scheme}:'", field=field)
    if not parts.hostname:
        raise InvalidRequest(f"{field}: the URL has no host: {url}", field=field)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"{field}: cannot resolve host '{host}' ({exc})", field=field) from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    if _allow_listed(host, addresses, settings.fetch_allow_hosts):
        return addresses
    for address in addresses:
        if not is_public(address):
            raise UrlNotAllowed(
                f"{field}: '{host}' resolves to {address}, which is not a public address; "
                "inputs must come from the public internet (or an allow-listed host)",
                field=field,
            )
    return addresses


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is a globally routable unicast address, looking inside IPv6 wrappers."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address.teredo:
            embedded = address.teredo[1]
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_multicast or address.is_reserved or address.is_unspecified or address.is_link_local
    )


def _allow_listed(host: str, addresses: list[IPAddress], allowed: list[str]) -> bool:
    for entry in allowed:
        if entry.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if addresses and all(a in network for a in addresses):
            return True
    return False


class _Deadline:
    """The whole download's time limit: each hop's connect and read timeouts are cut to what is left of it, and
    a body still arriving at the deadline has its socket shut (a blocked read cannot be interrupted otherwise)."""

    def __init__(self, settings: Settings) -> None:
        self.total_s, self._settings = settings.fetch_total_timeout_s, settings
        self._end = time.monotonic() + self.total_s

    @property
    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())

    @property
    def passed(self) -> bool:
        return self.left <= 0

    def timeouts(self) -> dict[str, float]:
        left = max(self.left, 0.001)
        return httpx.Timeout(min(self._settings.fetch_read_timeout_s, left), pool=left,
                             connect=min(self._settings.fetch_connect_timeout_s, left)).as_dict()

    @contextmanager
    def cutting(self, response: httpx.Response) -> Iterator[None]:
        """Shut ``response``'s socket at the deadline, if its body is still being read then."""
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            yield
            return
        timer = threading.Timer(self.left, _shut, (sock,))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def error(self, field: str, url: str) -> FetchFailed:
        return FetchFailed(f"{field}: {url} did not finish downloading within {self.total_s:g} s; serve it faster, "
                           "or send the file as an upload (POST /v1/uploads)", field=field)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read, which then fails
    except OSError:  # already closed: the download ended first
        pass


def _download(url: str, dest_dir: Path, *, kind: str, cap: int, field: str, settings: Settings) -> Path:
    guard = FETCH_GUARD.get()
    with guard() if guard is not None else nullcontext():
        deadline = _Deadline(settings)
        try:
            return _download_within(url, dest_dir, kind=kind, cap=cap, field=field, settings=settings,
                                    deadline=deadline)
        except FetchFailed:
            if deadline.passed:  # a timeout or a broken read because the deadline cut it: say which limit
                raise deadline.error(field, url) from None
            raise


def _download_within(url: str, dest_dir: Path, *, kind: str, cap: int, field: str, settings: Settings,
                     deadline: _Deadline) -> Path:
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            request = pinned_request(client, "GET", url, settings, field=field)
            request.extensions["timeout"] = deadline.timeouts()
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException:
                raise FetchFailed(f"{field}: {url} did not answer in time", field=field) from None
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{field}: could not download {url}: {exc}", field=field) from None
            try:
                if response.is_redirect:
                    url = urllib.parse.urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise FetchFailed(f"{field}: {url} answered HTTP {response.status_code}", field=field)
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cap:
                    raise _too_large(field, kind, cap)
                with deadline.cutting(response):
                    return _stream_to_file(response, dest_dir, kind, cap, field, url)
            finally:
                response.close()
    raise FetchFailed(f"{field}: more than {MAX_REDIRECTS} redirects from {url}", field=field)


def pinned_request(
    client: httpx.Client, method: str, url: str, settings: Settings, *, field: str = "url",
    headers: dict[str, str] | None = None, content: bytes | None = None,
) -> httpx.Request:
    """A request for ``url`` that goes to the address ``check_url`` approved, not to a fresh lookup.

    The original Host header and TLS server name are kept, so virtual hosts and certificates work.
    """
    address = check_url(url, settings, field=field)[0]
    parts = urllib.parse.urlsplit(url)
    ip_host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{ip_host}:{parts.port}" if parts.port else ip_host
    pinned = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.hostname + (f":{parts.port}" if parts.port else "")
    return client.build_request(
        method, pinned, headers={**(headers or {}), "Host": host_header}, content=content,
        extensions={"sni_hostname": parts.hostname},
    )


def _stream_to_file(response: httpx.Response, dest_dir: Path, kind: str, cap: int, field: str, url: str) -> Path:
    size = 0
    with disk_writes(field):
        fd, name = tempfile.mkstemp(prefix=f"{kind}-", dir=dest_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    size += len(chunk)
                    if size > cap:
                        raise _too_large(field, kind, cap)
                    out.write(chunk)
        except httpx.HTTPError as exc:
            os.unlink(name)
            raise FetchFailed(f"{field}: download of {url} broke off: {exc}", field=field) from None
        except BaseException:
            os.unlink(name)  # a full disk included: no half-written input stays behind
            raise
    return Path(name)


def _decode_data_uri(uri: str, field: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise InvalidRequest(f"{field}: malformed data: URI (no comma before the payload)", field=field)
    if header.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=False)
        except (binascii.Error, ValueError):
            raise InvalidRequest(f"{field}: the data: URI's base64 payload is corrupt", field=field) from None
    return urllib.parse.unquote_to_bytes(payload)


def _save(data: bytes, dest_dir: Path, kind: str, cap: int, field: str) -> Path:
    if len(data) > cap:
        raise _too_large(field, kind, cap)
    with disk_writes(field):
        fd, name = tempfile.mkstemp(prefix=f"{kind}-", dir=dest_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except BaseException:
            os.unlink(name)
            raise
    return Path(name)


def _too_large(field: str, kind: str, cap: int) -> InputTooLarge:
    return InputTooLarge(
        f"{field}: the {kind} is larger than the {cap // (1024 * 1024)} MB limit; send a smaller file",
        code=f"{kind}_too_large",
        field=field,
    )
