"""RunPod: the documented runsync request, its SDK unchanged (RUNPOD_ENDPOINT_BASE_URL, Endpoint.run_sync,
run + status + output, health, cancel), and error shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, wait_until
from compat_servers import start_server
from media_checks import assert_playable_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runpod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    server, key = start_server(tmp_path_factory, "runpod")
    yield server, key
    server.stop()


def documented_body(files: FileServer) -> dict:
    """The documented request, its two example.com URLs replaced by loopback ones."""
    return {"input": {"prompt": "a cartoon computer talking", "image": files.url("grace_hopper.jpg"),
                      "audio": files.url("short.wav"), "size": "480p", "enable_safety_checker": True}}


def test_documented_runsync(runpod: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = runpod
    response = httpx.post(f"{server.url}/v2/infinitetalk/runsync", json=documented_body(files), timeout=200,
                          headers={"Authorization": f"Bearer {key['key']}", "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "COMPLETED", result
    assert result["id"]
    assert isinstance(result["delayTime"], int) and result["delayTime"] >= 0
    assert isinstance(result["executionTime"], int) and result["executionTime"] > 0
    assert result["workerId"]
    assert result["output"]["cost"] == pytest.approx(0.15)  # 5 billed seconds at 480p
    assert_playable_video(result["output"]["video_url"], tmp_path)


SDK_SCRIPT = textwrap.dedent("""
    import json, sys
    import runpod

    runpod.api_key = sys.argv[1]
    request = json.loads(sys.argv[2])
    endpoint = runpod.Endpoint("infinitetalk")
    out = {"run_sync": endpoint.run_sync(request, timeout=200)}
    job = endpoint.run(request)
    statuses = [job.status()]
    out["output"] = job.output(timeout=200)
    statuses.append(job.status())
    out["statuses"] = statuses
    out["health"] = endpoint.health()
    print(json.dumps(out))
""")


def test_sdk_unchanged(runpod: tuple[Server, dict], files: FileServer, tmp_path: Path) -> None:
    server, key = runpod
    # the SDK reads its base URL from the environment at import; a fresh process, as a user's program would be
    env = {**os.environ, "RUNPOD_ENDPOINT_BASE_URL": f"{server.url}/v2"}
    done = subprocess.run([sys.executable, "-c", SDK_SCRIPT, key["key"], json.dumps(documented_body(files))],
                          capture_output=True, text=True, env=env, timeout=300)
    # runpod is installed with --no-deps (see the dev extra in pyproject.toml)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert_playable_video(out["run_sync"]["video_url"], tmp_path)
    assert out["output"]["video_url"] != out["run_sync"]["video_url"]
    assert out["statuses"][0] in ("IN_QUEUE", "IN_PROGRESS", "COMPLETED")
    assert out["statuses"][-1] == "COMPLETED"
    assert out["health"]["jobs"]["completed"] >= 2 and "workers" in out["health"]


def test_cancel_and_status(runpod: tuple[Server, dict], files: FileServer) -> None:
    server, key = runpod
    with httpx.Client(base_url=f"{server.url}/v2/infinitetalk", timeout=60,
                      headers={"Authorization": f"Bearer {key['key']}"}) as client:
        first = client.post("/run", json=documented_body(files)).json()
        second = client.post("/run", json=documented_body(files)).json()
        assert second["status"] == "IN_QUEUE"
        canceled = client.post(f"/cancel/{second['id']}")
        assert canceled.status_code == 200 and canceled.json()["id"] == second["id"]

        def ended(job_id: str) -> dict | None:
            body = client.get(f"/status/{job_id}").json()
            return body if body["status"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT") else None

        assert wait_until(lambda: ended(second["id"]), timeout=60, what="cancel")["status"] == "CANCELLED"
        assert wait_until(lambda: ended(first["id"]), timeout=180, what="the first job")["status"] == "COMPLETED"
        # canceling a finished job leaves it as it ended
        assert client.post(f"/cancel/{first['id']}").json()["status"] == "COMPLETED"


def test_failed_job_and_error_shapes(runpod: tuple[Server, dict], files: FileServer) -> None:
    server, key = runpod
    base = f"{server.url}/v2/infinitetalk"
    auth = {"Authorization": f"Bearer {key['key']}"}
    for headers in ({}, {"Authorization": "Bearer itk_wrong"}):
        assert httpx.post(f"{base}/run", json=documented_body(files), headers=headers).status_code == 401
    body = documented_body(files)
    del body["input"]["size"]
    response = httpx.post(f"{base}/runsync", json=body, headers=auth)
    assert response.status_code == 400
    assert response.json()["status"] == "FAILED" and "size" in response.json()["error"]
    body = documented_body(files)
    body["input"]["audio"] = files.url("missing.wav")  # the documented "Invalid audio URL" case
    response = httpx.post(f"{base}/runsync", json=body, headers=auth)
    assert response.status_code == 400 and response.json()["status"] == "FAILED", response.text
    assert response.json()["error"].startswith("input.audio")
    body = documented_body(files)
    body["input"]["image"] = files.url("noise.png")
    failed = httpx.post(f"{base}/runsync", json=body, headers=auth, timeout=200).json()
    assert failed["status"] == "FAILED" and "face" in failed["error"] and "output" not in failed
    assert httpx.get(f"{base}/status/task_unknown", headers=auth).status_code == 404
    assert httpx.post(f"{server.url}/v2/no-such-endpoint/run", json=documented_body(files),
                      headers=auth).status_code == 404
