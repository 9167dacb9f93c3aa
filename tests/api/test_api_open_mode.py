"""Without keys the server is open, but only on loopback; elsewhere it refuses to start unless --insecure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api_servers import Server, free_port


def test_open_mode_says_so(preview_server: Server) -> None:
    assert "no API keys: serving OPEN on 127.0.0.1" in preview_server.log()


def test_refuses_to_serve_open_beyond_loopback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infinitetalk.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without API keys" in result.stderr
    assert "--insecure" in result.stderr
