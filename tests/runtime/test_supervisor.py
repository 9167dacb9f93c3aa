"""The worker supervisor (``runtime.supervisor``) on real child processes: a child that dies starts again after
its delay, one that stops on its own stays stopped, and SIGTERM here reaches every child."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from infinitetalk.runtime import supervisor

#: A child that notes each of its starts in a file, exits 1 on its first start (a crash) and 0 on its second.
CRASHES_ONCE = """
import sys
runs = open(sys.argv[1], "a+")
runs.write("run\\n")
runs.seek(0)
sys.exit(1 if len(runs.readlines()) == 1 else 0)
"""

#: A child that says it is ready, then waits for SIGTERM and exits 0 on it (as a worker that stopped cleanly).
WAITS_FOR_SIGTERM = """
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
pathlib.Path(sys.argv[1]).touch()
time.sleep(60)
sys.exit(5)
"""


def test_a_child_that_died_starts_again_and_one_that_stopped_does_not(tmp_path: Path) -> None:
    runs = tmp_path / "runs.txt"
    began = time.monotonic()
    code = supervisor.supervise({"crashes once": [sys.executable, "-c", CRASHES_ONCE, str(runs)]})
    assert code == 0  # its second run stopped on its own: the supervisor is done
    assert runs.read_text().splitlines() == ["run", "run"]
    assert time.monotonic() - began >= supervisor.RESTART_DELAY_S  # not started again at once


def test_sigterm_reaches_every_child_and_the_handlers_are_given_back(tmp_path: Path) -> None:
    ready = [tmp_path / "a.ready", tmp_path / "b.ready"]
    mine = signal.getsignal(signal.SIGTERM)

    def stop_when_ready() -> None:
        deadline = time.monotonic() + 30
        while not all(path.exists() for path in ready) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=stop_when_ready, daemon=True).start()
    code = supervisor.supervise({path.stem: [sys.executable, "-c", WAITS_FOR_SIGTERM, str(path)] for path in ready})
    assert code == 0  # both stopped cleanly on the forwarded signal (5: one slept out its minute, unsignalled)
    assert signal.getsignal(signal.SIGTERM) == mine


@pytest.mark.parametrize(
    ("engine", "weights", "refused"),
    [("auto", None, True), ("preview", "w", True), ("instant", "w", True), ("neural", None, True),
     ("neural", "w", False), ("auto", "w", False)],
)
def test_one_rule_for_a_job_on_several_gpus(engine: str, weights: str | None, refused: bool) -> None:
    from infinitetalk.errors import InvalidRequest
    from infinitetalk.runtime import launch

    for option, field in (("--gpus", "gpus"), ("--gpus-per-job", "gpus_per_job")):
        try:
            launch.require_neural(engine, Path(weights) if weights else None, option)
        except InvalidRequest as exc:
            assert refused, exc.message
            assert exc.field == field
            assert exc.message.startswith(f"{option} ") and "neural engine" in exc.message
            assert exc.message.endswith(f"give --weights DIR (and --engine neural or auto), or leave {option} out")
        else:
            assert not refused
