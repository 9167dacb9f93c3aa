"""Tasks survive the process: kill -9 mid-task, start again, the task finishes and is billed once."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_servers import FileServer, Server, ledger, make_key, wait_until


def test_kill_9_mid_task_then_restart(tmp_path: Path, file_server: FileServer) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = make_key(data_dir, "survivor", balance=1.0)
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.03"}
    server = Server(data_dir, env=env).start()
    try:
        client = server.client(key["key"])
        task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")})
        wait_until(lambda: client.get(task["id"])["progress"]["fraction"] > 0.1, timeout=60,
                   what="the task to be part-way")
        server.kill9()
    finally:
        server.stop()

    again = Server(data_dir, env=env).start()
    try:
        client = again.client(key["key"])
        done = client.wait(task["id"], timeout=120)
        assert done["status"] == "succeeded", done["error"]
        assert done["outputs"]
    finally:
        again.stop()
    balance, rows = ledger(data_dir, key["id"])
    assert [kind for kind, _, _ in rows] == ["top_up", "reserve"]
    assert balance == pytest.approx(1.0 - task["cost"]["price"])
    assert "queued again (it was running when the server stopped)" in again.log()
