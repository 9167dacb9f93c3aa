"""Key-less (open) access is what the operator asked for with --open, on loopback only; an empty or emptied
key table never opens the server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from api_servers import Server, cli, make_key, wait_until

# SQLite only: who may call without a key is decided before the store is read, so a PostgreSQL pass would repeat it for nothing.
pytestmark = pytest.mark.sqlite_only


def test_open_mode_says_so(preview_server: Server) -> None:
    assert "--open: callers on this machine may use the server without a key" in preview_server.log()
    assert httpx.get(f"{preview_server.url}/v1/tasks").status_code == 200


def test_no_keys_without_open_refuses_key_less_callers(tmp_path: Path) -> None:
    with Server(tmp_path, env={"INFINITETALK_ENGINE": "instant"}) as server:
        response = httpx.get(f"{server.url}/v1/tasks")
        assert response.status_code == 401
        assert "keys create" in response.json()["error"]["message"]
        assert "no API keys yet" in server.log()


def test_revoking_the_last_key_does_not_open_the_server(tmp_path: Path) -> None:
    key = make_key(tmp_path, "only")
    with Server(tmp_path, env={"INFINITETALK_ENGINE": "instant"}) as server:
        assert httpx.get(f"{server.url}/v1/tasks", headers={"X-API-Key": key["key"]}).status_code == 200
        cli("keys", "revoke", key["id"], data_dir=tmp_path)
        wait_until(lambda: httpx.get(f"{server.url}/v1/tasks", headers={"X-API-Key": key["key"]}).status_code == 401,
                   timeout=10, what="the revoked key to be refused (after the 1 s key cache)")
        assert httpx.get(f"{server.url}/v1/tasks").status_code == 401
