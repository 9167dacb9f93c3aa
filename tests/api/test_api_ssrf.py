"""Input and callback URLs that point into our own network are refused (only `localhost` is allow-listed)."""

from __future__ import annotations

import urllib.parse

import pytest
from api_servers import FileServer, Server, ledger, make_key

from infinitetalk.client import ApiError

# SQLite only: the URL guard runs before anything is stored, so a PostgreSQL pass would repeat it for nothing.
pytestmark = pytest.mark.sqlite_only


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/short.wav",
        "http://[::1]:{port}/short.wav",
        "http://10.0.0.7/short.wav",
        "http://169.254.169.254/latest/meta-data/",
        "http://192.168.1.1/a.wav",
        "redirect:http://127.0.0.1:{port}/short.wav",
        "redirect:http://169.254.169.254/latest/meta-data/",
    ],
)
def test_internal_addresses_are_refused(keyed_server: Server, file_server: FileServer, url: str) -> None:
    port = urllib.parse.urlsplit(file_server.url("x")).port
    url = url.format(port=port)
    if url.startswith("redirect:"):  # an allow-listed host that redirects inward
        url = file_server.url("redirect?to=" + urllib.parse.quote(url.removeprefix("redirect:"), safe=""))
    key = make_key(keyed_server.data_dir, "prober", balance=1.0)
    client = keyed_server.client(key["key"])
    with pytest.raises(ApiError) as caught:
        client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": url})
    assert caught.value.status == 400
    assert caught.value.field == "audio"
    assert caught.value.code == "url_not_allowed", caught.value
    assert client.list()["data"] == []
    assert ledger(keyed_server.data_dir, key["id"])[0] == pytest.approx(1.0)


def test_internal_callback_url_is_refused(keyed_server: Server, file_server: FileServer) -> None:
    client = keyed_server.client(make_key(keyed_server.data_dir, "hooker")["key"])
    with pytest.raises(ApiError) as caught:
        client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav"),
                       "callback_url": "http://169.254.169.254/hook"})
    assert (caught.value.status, caught.value.field) == (400, "callback_url")
