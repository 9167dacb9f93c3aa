"""/readyz and /metrics while the broker or the database is down: they say which part is not ready in a word and
answer with the gauges they can read, never an address, a driver or an error's text (those go to the log, once
per change of state, not once per probe)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_servers import Server, wait_until
from services import RedisServer, postgres_server, redis_server

# Store-independent: each test brings the Redis or PostgreSQL it stops, so a second pass on the session's
# PostgreSQL would repeat the same thing.
pytestmark = pytest.mark.sqlite_only

#: What a body must never show: where the parts are, what they are, what they said.
_LEAKS = ("127.0.0.1", "localhost", "redis", "psycopg", "postgres", "sqlite", "error", "refused", "traceback",
          "connection")


def _gauges(text: str) -> dict[str, float]:
    """Prometheus text -> {name{labels}: value}."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def _assert_private(body: str, *ports: int) -> None:
    lowered = body.lower()
    assert not any(word in lowered for word in _LEAKS), body
    assert not any(re.search(rf"\b{port}\b", body) for port in ports), body


@pytest.fixture(scope="module")
def fleet_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, RedisServer]]:
    with redis_server() as redis:
        env = {"INFINITETALK_BROKER_URL": redis.url}
        with Server(tmp_path_factory.mktemp("health-fleet"), env=env) as server:
            yield server, redis


def test_broker_down(fleet_api: tuple[Server, RedisServer]) -> None:
    server, redis = fleet_api
    up = _gauges(httpx.get(f"{server.url}/metrics", timeout=30).text)
    assert up['infinitetalk_up{part="broker"}'] == 1.0 and up['infinitetalk_up{part="database"}'] == 1.0
    redis.stop()
    try:
        for _ in range(3):
            ready = httpx.get(f"{server.url}/readyz", timeout=30)
            assert ready.status_code == 503
            assert ready.json() == {"status": "not ready", "part": "broker"}
            _assert_private(ready.text, redis.port)
            metrics = httpx.get(f"{server.url}/metrics", timeout=30)
            assert metrics.status_code == 200, metrics.text
            _assert_private(metrics.text, redis.port)
            gauges = _gauges(metrics.text)
            assert gauges['infinitetalk_up{part="broker"}'] == 0.0
            assert gauges['infinitetalk_up{part="database"}'] == 1.0
            assert "infinitetalk_tasks_queued" in gauges  # what the database still tells
            assert "infinitetalk_broker_queue_depth" not in gauges  # skipped, not made up
        # the details, for the operator: once, however many probes saw the outage
        assert server.log().count("health: the broker is not answering") == 1
    finally:
        redis.start()
    wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200, timeout=30,
               what="readiness once the broker is back")
    assert server.log().count("health: the broker answers again") == 1


def test_database_down(tmp_path: Path) -> None:
    with postgres_server() as postgres:
        env = {"INFINITETALK_DATABASE_URL": postgres.create_database("health"), "INFINITETALK_ENGINE": "instant"}
        with Server(tmp_path, env=env) as server:
            stop = postgres.run("pg_ctl", "-D", str(postgres.data), "-m", "fast", "-w", "stop")
            assert stop.returncode == 0, stop.stderr
            for _ in range(3):
                ready = httpx.get(f"{server.url}/readyz", timeout=30)
                assert ready.status_code == 503
                assert ready.json() == {"status": "not ready", "part": "database"}
                _assert_private(ready.text, postgres.port)
                metrics = httpx.get(f"{server.url}/metrics", timeout=30)
                assert metrics.status_code == 200, metrics.text
                _assert_private(metrics.text, postgres.port)
                gauges = _gauges(metrics.text)
                assert gauges['infinitetalk_up{part="database"}'] == 0.0
                assert "infinitetalk_tasks_queued" not in gauges
                assert "infinitetalk_tasks_submitted_total" in gauges  # this process's own counters still show
            assert server.log().count("health: the database is not answering") == 1
