"""Fixtures of the fleet tests (processes in fleet_procs.py)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat"))  # media_checks

from api_servers import FileServer  # noqa: E402
from services import RedisServer, redis_server  # noqa: E402


@pytest.fixture(scope="module")
def fleet_redis() -> Iterator[RedisServer]:
    """A Redis of the fleet's own, with its append-only file, so a test can restart it and keep the queue."""
    with redis_server(append_only=True) as server:
        yield server


LONG_TEXT = "Every worker takes the next task from the queue, and a task that lost its worker runs again elsewhere."


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory, short_speech_wav: Path,
                grace_hopper_path: Path) -> Iterator[FileServer]:
    """The inputs, served on loopback under the allow-listed name `localhost`; long.wav (about 25 s) keeps a
    worker busy long enough to be caught running."""
    root = tmp_path_factory.mktemp("fleet-files")
    subprocess.run(["espeak-ng", "-s", "110", "-w", str(root / "long.wav"), " ".join([LONG_TEXT] * 3)], check=True)
    for source in (short_speech_wav, grace_hopper_path):
        (root / source.name).write_bytes(source.read_bytes())
    with FileServer(root) as server:
        yield server
