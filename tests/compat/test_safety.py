"""The safety-check interface behind the providers' flags: none installed says "not checked"; an installed
checker that flags an output fails the task with SensitiveContent in every provider's shape."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, wait_until
from compat_servers import start_server

from infinitetalk.errors import InvalidRequest
from infinitetalk.tasks.safety import NOT_CHECKED, NoChecker, load_checker


def test_default_is_not_checked(tmp_path: Path) -> None:
    checker = load_checker(None)
    assert isinstance(checker, NoChecker)
    assert checker.check(tmp_path / "any.mp4") == NOT_CHECKED and NOT_CHECKED.nsfw is None
    assert not NOT_CHECKED.flagged


def test_bad_checker_spec_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="safety_checker"):
        load_checker("no_such_module_here:make")


@pytest.fixture(scope="module")
def flagging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    here = str(Path(__file__).parent)
    env = {"INFINITETALK_SAFETY_CHECKER": "flag_all_checker:make",
           "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}
    server, key = start_server(tmp_path_factory, "safety", env=env)
    yield server, key
    server.stop()


@pytest.mark.slow
def test_flagged_output_fails_as_sensitive_content(flagging: tuple[Server, dict], files: FileServer) -> None:
    server, key = flagging
    auth = {"Authorization": f"Bearer {key['key']}"}
    apixo = httpx.post(f"{server.url}/generateTask/infinitetalk", headers=auth, json={"input": {
        "mode": "image-to-video", "image_urls": [files.url("grace_hopper.jpg")], "audio_urls": [files.url("short.wav")],
    }}).json()["data"]["taskId"]
    wavespeed = httpx.post(f"{server.url}/api/v3/wavespeed-ai/infinitetalk", headers=auth, json={
        "image": files.url("grace_hopper.jpg"), "audio": files.url("short.wav")}).json()["data"]["id"]

    def apixo_ended() -> dict | None:
        data = httpx.get(f"{server.url}/statusTask/infinitetalk", params={"taskId": apixo}, headers=auth).json()
        return data["data"] if data["data"]["state"] in ("success", "failed") else None

    data = wait_until(apixo_ended, timeout=180, every=0.3, what="the APIXO task")
    assert data["state"] == "failed" and data["failCode"] == "SensitiveContent", json.dumps(data)
    assert "resultJson" not in data
    result = wait_until(lambda: (d := httpx.get(f"{server.url}/api/v3/predictions/{wavespeed}/result",
                                                headers=auth).json()["data"])["status"] == "failed" and d,
                        timeout=180, every=0.3, what="the WaveSpeed task")
    assert result["outputs"] == [] and result["error"].startswith("SensitiveContent")
