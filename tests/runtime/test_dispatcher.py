"""The in-process dispatcher runs tasks on its threads and trips a running task's token on cancel."""

from __future__ import annotations

import threading

from infinitetalk.engines.base import CancelToken
from infinitetalk.runtime.dispatcher import InProcessDispatcher
from infinitetalk.runtime.tokens import DeadlineToken


def test_runs_and_cancels() -> None:
    started, finished = threading.Event(), {}

    def run(task_id: str, token: CancelToken) -> None:
        started.set()
        finished[task_id] = token._event.wait(timeout=30) and token.canceled

    dispatcher = InProcessDispatcher(run, workers=1, token=CancelToken)
    dispatcher.submit("a")
    assert started.wait(timeout=30)
    assert dispatcher.cancel("a") is True
    dispatcher.shutdown()
    dispatcher._pool.shutdown(wait=True)
    assert finished == {"a": True}
    assert dispatcher.cancel("unknown") is False


def test_deadline_token_times_out_and_stops() -> None:
    token = DeadlineToken(timeout_s=0)
    assert token.canceled and token.timed_out
    stopping = DeadlineToken(timeout_s=60)
    stopping.stop()
    assert stopping.canceled and stopping.stopping and not stopping.timed_out
