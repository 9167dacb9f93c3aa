"""Outputs expire: after the TTL (4 s on the test server) the URL answers 410 and the sweep deletes the file."""

from __future__ import annotations

import httpx
from api_servers import FileServer, Server, make_key, wait_until


def test_expired_output_is_410_and_deleted(keyed_server: Server, file_server: FileServer) -> None:
    client = keyed_server.client(make_key(keyed_server.data_dir, "forgetful")["key"])
    task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")})
    done = client.wait(task["id"], timeout=60)
    url = done["outputs"][0]["url"]
    assert httpx.get(url).status_code == 200
    assert httpx.get(url.replace("sig=", "sig=0")).status_code == 404  # a forged signature
    wait_until(lambda: httpx.get(url).status_code == 410, timeout=30, every=0.2, what="the URL to expire")
    assert httpx.get(url).json()["error"]["code"] == "gone"
    wait_until(lambda: not (keyed_server.data_dir / "outputs" / task["id"]).exists(), timeout=30,
               what="the sweep to delete the output")
    later = client.get(task["id"])
    assert later["outputs"] == [] and later["outputs_expired"] is True
    assert not (keyed_server.data_dir / "inputs" / task["id"]).exists()
