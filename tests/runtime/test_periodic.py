"""The one periodic loop (``infinitetalk.periodic``) and the loops built on it: a round that fails does not end
them, a stop ends them, and a running task keeps its heartbeat through a store that failed once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from infinitetalk.engines.base import CancelToken
from infinitetalk.periodic import Periodic
from infinitetalk.runtime.runner import _beating, _Progress


def _until(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_rounds_go_on_after_one_fails_and_end_at_stop() -> None:
    rounds: list[int] = []

    def work() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise OSError("the bucket did not answer")

    loop = Periodic("test-loop", 0.01, work).start()
    assert _until(lambda: len(rounds) >= 3)
    loop.stop()
    assert not loop.running
    ended = len(rounds)
    time.sleep(0.05)
    assert len(rounds) == ended


def test_at_start_runs_the_first_round_at_once() -> None:
    ran = threading.Event()
    with Periodic("test-at-start", 3600, ran.set, at_start=True):
        assert ran.wait(timeout=10)
    late = threading.Event()
    with Periodic("test-later", 3600, late.set):
        assert not late.wait(timeout=0.1)  # one interval in: an hour


def test_stop_waits_for_the_round_under_way() -> None:
    inside, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow() -> None:
        inside.set()
        release.wait(timeout=10)
        finished.set()

    loop = Periodic("test-slow", 0.01, slow).start()
    assert inside.wait(timeout=10)
    threading.Timer(0.05, release.set).start()
    loop.stop()
    assert finished.is_set()


def test_stop_from_inside_a_round_does_not_wait_for_itself() -> None:
    loops: list[Periodic] = []
    loop = Periodic("test-self-stop", 0.01, lambda: loops[0].stop())
    loops.append(loop)
    loop.start()
    assert _until(lambda: not loop.running)


class _FlakyStore:
    """A RunEvents' heartbeat whose first write fails, as a database restarting would."""

    def __init__(self) -> None:
        self.beats = 0

    def heartbeat(self, task_id: str, fraction: float, stage: str) -> bool:
        self.beats += 1
        if self.beats == 1:
            raise OperationalError("UPDATE tasks", {}, Exception("server closed the connection"))
        return False


def test_a_task_heartbeat_goes_on_after_a_failed_write() -> None:
    """Before: the heartbeat thread died on the first error, and a task rendering for minutes without progress
    (a neural chunk) looked dead to the reaper, which queued it again under the worker still running it."""
    store = _FlakyStore()
    with _beating(_Progress(store, "task_1", CancelToken()), 0.01):  # type: ignore[arg-type] - the one method used
        assert _until(lambda: store.beats >= 3, timeout=5), store.beats
