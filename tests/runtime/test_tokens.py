"""How a task's render ended, as its token says: the one answer the runner, the dispatcher and a fleet worker
act on (a cancel is recorded, a timeout fails the task, a stop queues it again)."""

from __future__ import annotations

import threading

from infinitetalk.runtime.dispatcher import InProcessDispatcher
from infinitetalk.runtime.tokens import DeadlineToken, Ending


def test_a_running_token_has_not_ended() -> None:
    token = DeadlineToken(timeout_s=60)
    assert token.ended is None and not token.canceled


def test_the_first_of_cancel_and_deadline_is_the_ending() -> None:
    canceled = DeadlineToken(timeout_s=0.01)
    canceled.cancel()
    threading.Event().wait(0.02)  # past the deadline now: the cancel came first
    assert canceled.ended is Ending.CANCELED and not canceled.timed_out
    late = DeadlineToken(timeout_s=0)
    assert late.canceled
    late.cancel()  # the caller's cancel after the deadline tripped it
    assert late.ended is Ending.TIMED_OUT


def test_a_stop_wins_over_a_cancel_or_the_deadline() -> None:
    """The process ends under the task before its end was recorded: it must run again."""
    for trip in (DeadlineToken.cancel, lambda token: token.canceled):
        token = DeadlineToken(timeout_s=0)
        trip(token)
        token.stop()
        assert token.ended is Ending.STOPPING and token.stopping
    stopped = DeadlineToken(timeout_s=60)
    stopped.stop()
    stopped.cancel()  # the store's cancel flag, read at the next progress write
    assert stopped.ended is Ending.STOPPING


def test_a_dispatcher_shutting_down_stops_its_tasks_and_a_cancel_cancels() -> None:
    running, ended, canceled_ended = threading.Barrier(3, timeout=30), {}, threading.Event()

    def run(task_id: str, token: DeadlineToken) -> None:
        running.wait()
        token._event.wait(timeout=30)
        ended[task_id] = token.ended
        if task_id == "canceled":
            canceled_ended.set()

    dispatcher = InProcessDispatcher(run, workers=2, token=lambda: DeadlineToken(60))
    dispatcher.submit("canceled")
    dispatcher.submit("stopped")
    running.wait()
    assert dispatcher.cancel("canceled")
    assert canceled_ended.wait(timeout=30)  # (a stop before the runner read the token would win: see above)
    dispatcher.shutdown()
    dispatcher._pool.shutdown(wait=True)
    assert ended == {"canceled": Ending.CANCELED, "stopped": Ending.STOPPING}
