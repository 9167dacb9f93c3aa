"""A keyed server on loopback for the schema fuzz run (``pytest -m fuzz``); its factories live in tests/api."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_servers import Server, make_key  # found through tests/conftest.py's path


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The instant engine, one funded key (created before the server starts, so it is not open)."""
    data_dir = tmp_path_factory.mktemp("fuzz-data")
    key = make_key(data_dir, "fuzz", balance=1000.0)["key"]
    with Server(data_dir, env={"INFINITETALK_ENGINE": "instant", "INFINITETALK_WORKERS": "1"}) as server:
        yield server, key
