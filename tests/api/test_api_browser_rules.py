"""Open mode serves this machine's programs, not its browser: key-less requests that a web page could make
(cross-site, `Origin: null`, a rebinding `Host`) or that a proxy forwarded are refused, while the same request
with a key, or from the playground's own origin, still works. Plus the rules every caller meets: JSON bodies
with a JSON content type, no ambiguous framing (Content-Length and Transfer-Encoding), and the page headers
(CSP, framing, nosniff)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, make_key

from infinitetalk.api import playground

# SQLite only: every rule here is decided on the request's headers, before the store is read.
pytestmark = pytest.mark.sqlite_only

EVIL = "https://evil.example"
#: What a cross-site `fetch(url, {method: "POST", mode: "no-cors", body: JSON.stringify(...)})` sends.
NO_CORS_JSON = {"Content-Type": "text/plain;charset=UTF-8", "Origin": EVIL, "Sec-Fetch-Site": "cross-site",
                "Sec-Fetch-Mode": "no-cors"}
#: What a plain `<form method=post enctype=multipart/form-data action=...>` on another site sends.
FORM_POST = {"Origin": EVIL, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[tuple[Server, str]]:
    """`serve --open` with the instant engine, an extra allowed name and a public URL; and a key."""
    data_dir = tmp_path_factory.mktemp("browser-rules")
    key = make_key(data_dir, "program", balance=50)["key"]
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_ALLOWED_HOSTS": "gpu-box.lan",
           "INFINITETALK_PUBLIC_URL": "https://api.example.test"}
    with Server(data_dir, env=env, open_mode=True) as server:
        yield server, key


@pytest.fixture(scope="module")
def inputs(file_server: FileServer) -> dict:
    return {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")}


def task_count(server: Server, key: str | None = None) -> int:
    headers = {"X-API-Key": key} if key else {}
    return len(httpx.get(f"{server.url}/v1/tasks?limit=100", headers=headers).raise_for_status().json()["data"])


def multipart(grace_hopper_path: Path, speech_wav: Path) -> dict:
    return {"image": ("face.jpg", grace_hopper_path.read_bytes(), "image/jpeg"),
            "audio": ("speech.wav", speech_wav.read_bytes(), "audio/wav")}


# --- cross-site browser requests --------------------------------------------------------------------------

def test_cross_site_no_cors_json_does_not_create_a_task(open_server: tuple[Server, str], inputs: dict) -> None:
    server, _ = open_server
    before = task_count(server)
    answer = httpx.post(f"{server.url}/v1/tasks", content=json.dumps(inputs), headers=NO_CORS_JSON)
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "cross_site_request" and "API key" in error["message"]
    assert task_count(server) == before


def test_cross_site_html_form_cannot_create_or_upload(open_server: tuple[Server, str], grace_hopper_path: Path,
                                                      speech_wav: Path) -> None:
    server, _ = open_server
    before = task_count(server)
    create = httpx.post(f"{server.url}/v1/tasks", files=multipart(grace_hopper_path, speech_wav), headers=FORM_POST)
    assert create.status_code == 403, create.text
    upload = httpx.post(f"{server.url}/v1/uploads", files={"file": ("face.jpg", grace_hopper_path.read_bytes())},
                        headers=FORM_POST)
    assert upload.status_code == 403, upload.text
    # an older browser sends no Sec-Fetch-* headers, but its Origin still names the other site
    old = httpx.post(f"{server.url}/v1/uploads", files={"file": ("face.jpg", grace_hopper_path.read_bytes())},
                     headers={"Origin": EVIL})
    assert old.status_code == 403, old.text
    assert task_count(server) == before


@pytest.mark.parametrize("headers", [{"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}],
                         ids=["origin-null", "same-site", "another-port"])
def test_sandboxed_and_sibling_pages_cannot_upload(open_server: tuple[Server, str], grace_hopper_path: Path,
                                                   headers: dict) -> None:
    server, _ = open_server
    upload = httpx.post(f"{server.url}/v1/uploads", files={"file": ("face.jpg", grace_hopper_path.read_bytes())},
                        headers=headers)
    assert upload.status_code == 403, upload.text
    assert upload.json()["error"]["code"] == "cross_site_request"


def test_the_same_requests_with_a_key_work(open_server: tuple[Server, str], inputs: dict, grace_hopper_path: Path,
                                           speech_wav: Path) -> None:
    server, key = open_server
    headers = {**FORM_POST, "X-API-Key": key}
    created = httpx.post(f"{server.url}/v1/tasks", json=inputs, headers={**headers, "Origin": "null"})
    assert created.status_code == 202, created.text
    form = httpx.post(f"{server.url}/v1/tasks", files=multipart(grace_hopper_path, speech_wav), headers=headers)
    assert form.status_code == 202, form.text
    upload = httpx.post(f"{server.url}/v1/uploads", files={"file": ("face.jpg", grace_hopper_path.read_bytes())},
                        headers=headers)
    assert upload.status_code == 201, upload.text


def test_the_playgrounds_own_origin_and_typed_urls_work(open_server: tuple[Server, str], inputs: dict) -> None:
    server, _ = open_server
    for origin in (server.url, f"http://localhost:{server.port}"):
        host = origin.removeprefix("http://")
        created = httpx.post(f"{server.url}/v1/tasks", json=inputs,
                             headers={"Host": host, "Origin": origin, "Sec-Fetch-Site": "same-origin"})
        assert created.status_code == 202, created.text
    # a URL typed into the address bar, or a bookmark
    assert httpx.get(f"{server.url}/v1/tasks", headers={"Sec-Fetch-Site": "none"}).status_code == 200


def test_a_page_from_another_site_may_still_link_to_pages_that_need_no_key(open_server: tuple[Server, str]) -> None:
    server, _ = open_server
    for path in ("/", "/docs", "/healthz"):
        assert httpx.get(f"{server.url}{path}", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


# --- DNS rebinding: a Host that is not one of ours ----------------------------------------------------------

def test_a_rebinding_host_cannot_read_tasks(open_server: tuple[Server, str], inputs: dict) -> None:
    server, key = open_server
    task = httpx.post(f"{server.url}/v1/tasks", json=inputs).raise_for_status().json()
    rebound = {"Host": f"rebind.evil.example:{server.port}"}
    listed = httpx.get(f"{server.url}/v1/tasks", headers=rebound)
    assert listed.status_code == 421, listed.text
    error = listed.json()["error"]
    assert error["code"] == "host_not_allowed" and "INFINITETALK_ALLOWED_HOSTS" in error["message"]
    assert httpx.get(f"{server.url}/v1/tasks/{task['id']}", headers=rebound).status_code == 421
    assert httpx.get(f"{server.url}/v1/tasks/{task['id']}/events", headers=rebound).status_code == 421
    # with a key the Host does not matter (a load balancer's name); /healthz holds nothing, probes reach it
    assert httpx.get(f"{server.url}/v1/tasks", headers={**rebound, "X-API-Key": key}).status_code == 200
    assert httpx.get(f"{server.url}/healthz", headers=rebound).status_code == 200


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST", "gpu-box.lan", "api.example.test"])
def test_the_servers_own_names_are_served(open_server: tuple[Server, str], host: str) -> None:
    server, _ = open_server
    for value in (host, f"{host}:{server.port}"):
        answer = httpx.get(f"{server.url}/v1/tasks", headers={"Host": value})
        assert answer.status_code == 200, (value, answer.text)


# --- proxies ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{"Forwarded": "for=203.0.113.9"}, {"X-Real-IP": "203.0.113.9"},
                                     {"X-Forwarded-For": "203.0.113.9"}, {"X-Forwarded-For": "127.0.0.1"}],
                         ids=["forwarded", "x-real-ip", "x-forwarded-for", "x-forwarded-for-loopback"])
def test_a_request_a_proxy_forwarded_is_not_local(open_server: tuple[Server, str], headers: dict) -> None:
    server, key = open_server
    answer = httpx.get(f"{server.url}/v1/tasks", headers=headers)
    assert answer.status_code == 401, answer.text
    if headers.get("X-Forwarded-For") != "203.0.113.9":  # uvicorn took that one as the client, not loopback
        assert "proxy" in answer.json()["error"]["message"]
    assert httpx.get(f"{server.url}/v1/tasks", headers={**headers, "X-API-Key": key}).status_code == 200


# --- JSON bodies: a JSON content type ------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", ["text/plain;charset=UTF-8", None, "application/x-www-form-urlencoded"])
def test_a_json_body_needs_a_json_content_type(open_server: tuple[Server, str], inputs: dict,
                                               content_type: str | None) -> None:
    server, key = open_server
    before = task_count(server, key)
    request = httpx.Request("POST", f"{server.url}/v1/tasks", content=json.dumps(inputs).encode(),
                            headers={"X-API-Key": key})
    if content_type:
        request.headers["Content-Type"] = content_type
    assert request.headers.get("Content-Type") == content_type
    with httpx.Client() as client:
        answer = client.send(request)
    assert answer.status_code == 415, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
    assert task_count(server, key) == before


def test_an_empty_body_is_a_plain_bad_request(open_server: tuple[Server, str]) -> None:
    """No body at all is no JSON body of the wrong type: every route documents the 400 it gets."""
    server, key = open_server
    for path in ("/v1/tasks", "/v1/estimate", "/api/v3/wavespeed-ai/infinitetalk", "/v2/infinitetalk/run"):
        answer = httpx.post(f"{server.url}{path}", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 400, (path, answer.text)
        assert "the body is empty" in answer.text, (path, answer.text)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.api+json",
                                          "Application/JSON"])
def test_json_content_types_are_accepted(open_server: tuple[Server, str], inputs: dict, content_type: str) -> None:
    server, key = open_server
    answer = httpx.post(f"{server.url}/v1/estimate", content=json.dumps(inputs),
                        headers={"X-API-Key": key, "Content-Type": content_type})
    assert answer.status_code == 200, answer.text


# --- framing -------------------------------------------------------------------------------------------------

def test_content_length_with_transfer_encoding_is_answered_once_and_closed(open_server: tuple[Server, str]) -> None:
    """A request hidden after a chunked body that Content-Length would frame otherwise is never served."""
    server, _ = open_server
    hidden = f"GET /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n"
    body = "0\r\n\r\n" + hidden
    smuggle = (f"POST /v1/estimate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n{body}").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(smuggle)
        received = b""
        while chunk := sock.recv(65536):  # until the server closes (a kept connection ends in the 30 s timeout)
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 "), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, received
    assert b"Transfer-Encoding" in received  # the answer says which headers clashed


# --- page headers ----------------------------------------------------------------------------------------------

def csp(answer: httpx.Response) -> dict[str, str]:
    policy = answer.headers.get("content-security-policy", "")
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def test_the_playground_page_has_a_strict_policy(open_server: tuple[Server, str]) -> None:
    server, _ = open_server
    page = httpx.get(f"{server.url}/")
    policy = csp(page)
    assert policy["script-src"] == "script-src 'self'", policy
    assert policy["frame-ancestors"] == "frame-ancestors 'none'" and policy["object-src"] == "object-src 'none'"
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/playground/index.html"])
def test_other_pages_cannot_be_framed(open_server: tuple[Server, str], path: str) -> None:
    server, _ = open_server
    page = httpx.get(f"{server.url}{path}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert csp(page)["frame-ancestors"] == "frame-ancestors 'none'"
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/playground/app.js", "/playground/style.css", "/docs-assets/swagger-ui.css",
                                  "/v1/models", "/healthz", "/openapi.json", "/no/such/page"])
def test_every_answer_says_nosniff(open_server: tuple[Server, str], path: str) -> None:
    server, _ = open_server
    answer = httpx.get(f"{server.url}{path}")
    assert answer.headers["x-content-type-options"] == "nosniff", (path, answer.status_code)


class _InlineCode(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.found.append("<script> without src")
        self._in_script = tag == "script"
        self.found += [f"<{tag} {name}=...>" for name in names if name.startswith("on") or name == "style"]
        if tag == "style":
            self.found.append("<style>")
        if tag == "a" and any((value or "").lower().startswith("javascript:") for _, value in attrs):
            self.found.append("javascript: link")


def test_the_playground_html_has_no_inline_code() -> None:
    """Its policy refuses inline script and style; the page must need neither."""
    parser = _InlineCode()
    parser.feed((playground.STATIC / "index.html").read_text(encoding="utf-8"))
    assert parser.found == []
