"""Start a provider-compatibility test server (a module's own, shared by its tests)."""

from __future__ import annotations

import pytest
from api_servers import Server, make_key


def start_server(tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
                 ) -> tuple[Server, dict]:
    """A server that requires keys, with one funded key (returned as make_key's dict)."""
    data_dir = tmp_path_factory.mktemp(f"{name}-data")
    key = make_key(data_dir, name, balance=100.0)
    server = Server(data_dir, env={"INFINITETALK_ENGINE": "auto", **(env or {})}).start()
    return server, key
