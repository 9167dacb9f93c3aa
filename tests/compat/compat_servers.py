"""Start a provider-compatibility test server (a module's own, shared by its tests)."""

from __future__ import annotations

import pytest
from api_servers import Server, make_key


def start_server(tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
                 ) -> tuple[Server, dict]:
    """A server that requires keys, with one funded key (returned as make_key's dict)."""
    data_dir = tmp_path_factory.mktemp(f"{name}-data")
    key = make_key(data_dir, name, balance=100.0)
    # faces unchecked at submit: noise.png then reaches the render and fails there, which is how these tests see
    # each provider's shape of a failed task (the submit check itself: tests/api/test_api_billing_rules.py)
    server = Server(data_dir, env={"INFINITETALK_ENGINE": "auto", "INFINITETALK_FACE_CHECK": "false",
                                   **(env or {})}).start()
    return server, key
