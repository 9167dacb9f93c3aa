"""Real parts for API tests: the server in a subprocess (uvicorn on loopback), a loopback file server for
inputs and a loopback webhook receiver. Factories live in api_servers.py.

Every test here runs twice: on SQLite (the single-machine default) and on PostgreSQL (a fleet's store, a fresh
database per data dir on the session's test server), except those marked ``sqlite_only``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api_servers import FileServer, Server, create_key, use_postgres

STORES = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # session scope: pytest groups the run by store (all SQLite, then all PostgreSQL) instead of switching
    # stores, and restarting the session's servers, between tests
    if "api_store" in metafunc.fixturenames:
        stores = STORES[:1] if metafunc.definition.get_closest_marker("sqlite_only") else STORES
        metafunc.parametrize("api_store", stores, indirect=True, scope="session")


@pytest.fixture(scope="session", autouse=True)
def api_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which task store this run of the test uses; api_servers takes it from here. A session- or module-scoped
    fixture that makes a server or key asks for it too, so that pytest makes it again for the other store."""
    use_postgres(request.getfixturevalue("postgres") if request.param == "postgresql" else None)
    try:
        yield request.param
    finally:
        use_postgres(None)


@pytest.fixture(scope="session")
def file_server(tmp_path_factory: pytest.TempPathFactory, speech_wav: Path, short_speech_wav: Path,
                grace_hopper_path: Path, noise_png: Path) -> Iterator[FileServer]:
    root = tmp_path_factory.mktemp("files")
    for source in (speech_wav, short_speech_wav, grace_hopper_path, noise_png):
        (root / source.name).write_bytes(source.read_bytes())
    with FileServer(root) as server:
        yield server


@pytest.fixture(scope="session")
def preview_server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[Server]:
    """The default engine (preview on a machine with no weights), open mode (--open: no keys on loopback)."""
    # tests race many submits with URL inputs at once; the per-key download cap is test_api_fairness's business
    env = {"INFINITETALK_ENGINE": "auto", "INFINITETALK_MAX_FETCHES_PER_KEY": "64"}
    with Server(tmp_path_factory.mktemp("preview-data"), env=env, open_mode=True) as server:
        yield server


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory, api_store: str) -> Iterator[Server]:
    """The instant engine, slowed to ~40 ms a frame so tasks can be caught running; keys required."""
    data_dir = tmp_path_factory.mktemp("keyed-data")
    create_key(data_dir, "bootstrap", balance=0)  # a key exists, so the server is not open
    env = {
        "INFINITETALK_ENGINE": "instant",
        "INFINITETALK_INSTANT_FRAME_DELAY_S": "0.04",
        "INFINITETALK_WORKERS": "2",
        "INFINITETALK_WEBHOOK_RETRY_DELAYS_S": "[0.3, 0.6, 1.0]",
        "INFINITETALK_OUTPUT_TTL_S": "4",
        "INFINITETALK_SWEEP_INTERVAL_S": "0.5",
        "INFINITETALK_MAX_FETCHES_PER_KEY": "64",  # racing URL submits of one key (see preview_server)
    }
    with Server(data_dir, env=env) as server:
        yield server
