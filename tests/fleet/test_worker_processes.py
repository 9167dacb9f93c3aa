"""`infinitetalk worker` as processes: the supervisor starts a child that died again (and not one that was asked
to stop); `--gpus 0,1 --gpus-per-job 2` is one worker made of two processes that share each job (here CPU
ranks over gloo, on tiny neural weights), shown as one live worker holding both GPUs, and one SIGTERM stops
every process of it, cleanly, its row included.

No neural task runs here: a task is made at 480p or more, where one chunk's VAE encode alone takes 86 s of this
CPU. The job over two ranks, with every way it can end, runs in tests/neural/test_ranks.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api_servers import make_key, settings_for, wait_until
from fleet_procs import Workers, fleet_env
from services import RedisServer

from infinitetalk.runtime.fleet import live_workers
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.models import WorkerRow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "neural"))
from neural_factories import write_weights  # noqa: E402

pytestmark = pytest.mark.slow


def _descendants(pid: int) -> set[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return set()
    found = {int(child) for child in children}
    for child in list(found):
        found |= _descendants(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _live(sessions) -> list[WorkerRow]:  # noqa: ANN001 - a session factory
    """Live workers, read straight from the store (a CLI call per poll is slow on a busy machine)."""
    with sessions() as session:
        return live_workers(session)


def test_a_group_of_two_is_one_worker_and_stops_together(tmp_path: Path, fleet_redis: RedisServer) -> None:
    weights = write_weights(tmp_path / "weights", variants=("single",))
    data = tmp_path / "data"
    data.mkdir()
    make_key(data, "bootstrap", balance=0)  # the store exists, migrated, before the worker opens it
    env = {**os.environ, **fleet_env(fleet_redis), "INFINITETALK_ENGINE": "neural",
           "INFINITETALK_WEIGHTS_DIR": str(weights.root), "INFINITETALK_RANKS_ON_CPU": "1"}
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "infinitetalk.cli", "worker", "--gpus", "0,1",
                                   "--gpus-per-job", "2", "--data-dir", str(data)], env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    db, sessions = open_database(settings_for(data))
    try:
        (row,) = wait_until(lambda: _live(sessions), timeout=120, every=0.2, what="the group's worker")
        assert row.gpu == "0,1" and row.engine == "neural"
        processes = _descendants(worker.pid)  # torchrun's two ranks (and nothing but the ranks calls itself one)
        assert len(processes) >= 2, log_path.read_text(errors="replace")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log_path.read_text(errors="replace")
        assert not [pid for pid in processes if _alive(pid)]
        assert _live(sessions) == []
        assert "worker on GPUs 0,1" in log_path.read_text(errors="replace")
    finally:
        if worker.poll() is None:
            worker.kill()
        db.dispose()


def test_a_worker_that_dies_is_started_again(tmp_path: Path, fleet_redis: RedisServer) -> None:
    data = tmp_path / "data"
    data.mkdir()
    make_key(data, "bootstrap", balance=0)
    workers = Workers(data, {**os.environ, **fleet_env(fleet_redis)}, "0,1").start(expect=2)
    db, sessions = open_database(settings_for(data))
    try:
        first = {worker.pid: worker.gpu for worker in _live(sessions)}
        killed, asked = sorted(first)
        os.kill(killed, signal.SIGKILL)
        (new,) = wait_until(lambda: {w.pid for w in _live(sessions)} - set(first), timeout=60, every=0.2,
                            what="the killed worker's replacement")
        assert {w.pid: w.gpu for w in _live(sessions)}[new] == first[killed]  # on the same GPU
        assert "exited with -9; starting it again" in workers.log()

        os.kill(asked, signal.SIGTERM)  # a worker asked to stop stays stopped
        wait_until(lambda: not _alive(asked), timeout=60, what="the stopped worker to exit")
        time.sleep(3)  # three times the first restart delay
        assert {w.pid for w in _live(sessions)} - set(first) == {new}
        assert workers.proc is not None and workers.proc.poll() is None  # the supervisor still runs the other
    finally:
        workers.stop()
        db.dispose()
    assert workers.proc.returncode == 0
