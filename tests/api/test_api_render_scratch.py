"""A render's scratch folder in TMPDIR outlives a kill -9 of its server; the next start-up deletes it, and only
folders whose process is gone (several servers and workers may share one TMPDIR)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from api_servers import FileServer, Server, make_key, wait_until

# SQLite only: folders in TMPDIR; the store plays no part.
pytestmark = pytest.mark.sqlite_only


def _scratch(temp_dir: Path, pid: int) -> list[Path]:
    return list(temp_dir.glob(f"infinitetalk-render-{socket.gethostname()}-{pid}-*"))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_renders_scratch_goes_at_start_up(tmp_path: Path, file_server: FileServer) -> None:
    data_dir, temp_dir = tmp_path / "data", tmp_path / "tmp"
    data_dir.mkdir()
    temp_dir.mkdir()
    key = make_key(data_dir, "scratch", balance=1.0)
    env = {"INFINITETALK_ENGINE": "instant", "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.03", "TMPDIR": str(temp_dir)}
    server = Server(data_dir, env=env).start()
    try:
        client = server.client(key["key"])
        task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("hello.wav")})
        killed = wait_until(lambda: _scratch(temp_dir, server.proc.pid), timeout=60, what="the render's scratch")
        server.kill9()
    finally:
        server.stop()
    assert all(path.is_dir() for path in killed)  # what a kill -9 leaves

    # another process's, rendering now (this test process stands in for it), and a folder of an older style
    live = temp_dir / f"infinitetalk-render-{socket.gethostname()}-{os.getpid()}-live"
    older = temp_dir / "infinitetalk-render-x7k2p9"
    dead = temp_dir / f"infinitetalk-render-{socket.gethostname()}-{_dead_pid()}-gone"
    for folder in (live, older, dead):
        (folder / "work").mkdir(parents=True)
        (folder / "work" / "seg-00000.ts").write_bytes(b"\0" * 16)

    with Server(data_dir, env=env) as again:
        assert not any(path.exists() for path in killed), "the killed render's scratch is still there"
        assert not dead.exists()
        assert live.exists() and older.exists()
        done = again.client(key["key"]).wait(task["id"], timeout=120)
        assert done["status"] == "succeeded", done["error"]
        assert _scratch(temp_dir, again.proc.pid) == []  # a finished render leaves none
