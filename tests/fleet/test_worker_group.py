"""`infinitetalk worker --gpus 0,1 --gpus-per-job 2`: one worker made of two processes that share each job
(here CPU ranks over gloo, on tiny neural weights). It shows as one live worker holding both GPUs, and one
SIGTERM stops every process of it, cleanly, its row included.

No task runs here: a task is made at 480p or more, where one chunk's VAE encode alone takes 86 s of this
CPU. The job over two ranks, with every way it can end, runs in tests/neural/test_ranks.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from api_servers import make_key, wait_until
from fleet_procs import fleet_env
from services import RedisServer

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


def test_a_group_of_two_is_one_worker_and_stops_together(tmp_path: Path, fleet_redis: RedisServer) -> None:
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import WorkerRow
    from api_servers import settings_for

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

    def live() -> list[WorkerRow]:
        with sessions() as session:
            return session.query(WorkerRow).filter_by(stopped_at=None).all()

    try:
        (row,) = wait_until(live, timeout=120, every=0.2, what="the group's worker")
        assert row.gpu == "0,1" and row.engine == "neural"
        processes = _descendants(worker.pid)  # torchrun's two ranks (and nothing but the ranks calls itself one)
        assert len(processes) >= 2, log_path.read_text(errors="replace")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log_path.read_text(errors="replace")
        assert not [pid for pid in processes if _alive(pid)]
        assert live() == []
        assert "worker on GPUs 0,1" in log_path.read_text(errors="replace")
    finally:
        if worker.poll() is None:
            worker.kill()
        db.dispose()
