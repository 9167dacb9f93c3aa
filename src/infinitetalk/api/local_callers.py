"""Who `serve --open` serves without a key: the programs of this machine, not the pages its browser shows.

Loopback alone says little: every web page the operator opens runs on this machine too. A page on another
site can send a form, a `no-cors` fetch or a sandboxed (`Origin: null`) request to 127.0.0.1, and a page on a
name that resolves to this machine (DNS rebinding) is even allowed to read the answers. A reverse proxy on
this machine makes every client look local. So a key-less request must also:

- come straight from its caller: no `Forwarded`, `X-Forwarded-For` or `X-Real-IP` (uvicorn rewrites the
  client address from `X-Forwarded-For` only, and only for a trusted proxy; the others it leaves alone);
- name one of the server's own hosts in `Host` (a rebinding page sends its own name);
- not come from another origin: `Sec-Fetch-Site` is `same-origin` or `none` (typed, a bookmark) when a
  browser sends it, and `Origin`, when sent, is the server's own. Programs send neither.

A request with a key is none of this module's business: a foreign page cannot have one.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from starlette.datastructures import Headers

from infinitetalk.config import Settings
from infinitetalk.errors import Forbidden, HostNotAllowed, InfiniteTalkError, Unauthorized

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: Bind addresses that mean "every interface": no name of their own (and 0.0.0.0 as a Host is itself a trick
#: that reaches loopback from pages that may not name it).
WILDCARD_BINDS = ("0.0.0.0", "::", "")
#: Sec-Fetch-Site values of a request that no other site started.
OWN_FETCH_SITES = ("same-origin", "none")
DEFAULT_PORTS = {"http": 80, "https": 443}
NEED_A_KEY = "send an API key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>' " \
             "(`infinitetalk keys create NAME` makes one)"


def refusal(headers: Headers, scheme: str, settings: Settings) -> InfiniteTalkError | None:
    """Why a key-less loopback request may not be served in open mode, or None when it may."""
    if any(name in headers for name in FORWARDING_HEADERS):
        return Unauthorized(f"{NEED_A_KEY}; a request that came through a proxy is not a caller on this machine")
    host = headers.get("host", "")
    if _name(host) not in own_hosts(settings.host, settings.public_url, tuple(settings.allowed_hosts)):
        return HostNotAllowed(
            f"this server does not answer to the name {host!r} without an API key; send a key, or call it as "
            "localhost or 127.0.0.1 (the operator can add names with INFINITETALK_ALLOWED_HOSTS)")
    site, origin = headers.get("sec-fetch-site"), headers.get("origin")
    foreign_site = site is not None and site not in OWN_FETCH_SITES
    if foreign_site or (origin is not None and not _same_origin(origin, host, scheme)):
        return Forbidden(f"a web page from another origin ({origin or site}) may not use this server without a key: "
                         "open mode serves the programs of this machine and the playground at /; send an API key",
                         code="cross_site_request")
    return None


@lru_cache(maxsize=8)
def own_hosts(bind_host: str, public_url: str | None, allowed: tuple[str, ...]) -> frozenset[str]:
    """The names the server answers to without a key: loopback's, the bind address, public_url's, the extras."""
    names = set(LOOPBACK_NAMES) | {_name(_bracketed(host)) for host in allowed}
    if bind_host not in WILDCARD_BINDS:
        names.add(_name(_bracketed(bind_host)))
    if public_url:
        names.add((urlsplit(public_url).hostname or "").rstrip("."))
    return frozenset(names - {""})


def _bracketed(host: str) -> str:
    """A setting's IPv6 address as a Host header writes it (`::1` -> `[::1]`); names and `name:port` as they are."""
    return f"[{host}]" if host.count(":") > 1 and not host.startswith("[") else host


def _name(host: str) -> str:
    """The host name of a Host header value (`Name:8000`, `[::1]:8000`), lower-case, no port, no final dot."""
    try:
        return (urlsplit(f"//{host.strip()}").hostname or "").rstrip(".")
    except ValueError:  # a malformed bracket or port
        return ""


def _same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether ``Origin`` names this server as the request reached it (`null` never does)."""
    try:
        theirs, ours = urlsplit(origin), urlsplit(f"{scheme}://{host}")
        return (theirs.scheme, theirs.hostname, theirs.port or DEFAULT_PORTS.get(theirs.scheme)) == \
            (ours.scheme, ours.hostname, ours.port or DEFAULT_PORTS.get(ours.scheme)) and theirs.hostname is not None
    except ValueError:
        return False
