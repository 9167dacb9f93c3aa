"""/healthz answers through a flood of 1,100 stalled clients on a machine whose open-files limit is 1,024 (hard):
the server never accepts more connections in one go than its descriptors hold, so accept() never fails (EMFILE),
which made asyncio stop accepting for a second at a time, probes included."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_servers import START_TIMEOUT_S, Server, wait_until

# SQLite only: descriptors and the accept loop; the store plays no part.
pytestmark = pytest.mark.sqlite_only

OPEN_FILES = 1024
STALLED = 1100


class _LimitedServer(Server):
    """A server started under a hard open-files limit (as on a host whose limit is 1,024), so it cannot raise it."""

    def start(self) -> Server:
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))

        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infinitetalk.cli", "serve", "--port", str(self.port), "--data-dir",
                 str(self.data_dir), "--log-level", "info", "--open"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=limit)
        wait_until(self._healthy, timeout=START_TIMEOUT_S, every=0.1, what=f"server on {self.url}")
        return self


def test_healthz_through_stalled_clients_past_the_open_files_limit(tmp_path: Path) -> None:
    stalled: list[socket.socket] = []
    with _LimitedServer(tmp_path, env={"INFINITETALK_ENGINE": "instant"}) as server:
        try:
            for n in range(STALLED):  # half send nothing, half a request head that never ends
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                if n % 2:
                    sock.sendall(b"GET /v1/tasks HTTP/1.1\r\nHost: x\r\n")
                stalled.append(sock)
            probes = [httpx.get(f"{server.url}/healthz", timeout=10).status_code for _ in range(20)]
        finally:
            for sock in stalled:
                sock.close()
        assert probes == [200] * 20
        assert "out of system resource" not in server.log(), "accept() ran out of descriptors"
