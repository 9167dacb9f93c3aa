"""The task state machine and its money, on a real store (SQLite in a temp folder), driven through the lifecycle's
own transitions. The API side of a fleet on Dramatiq's StubBroker submits the tasks: real inputs, a real price and
reservation, and nothing in this process that would run them, so each test moves them itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from inprocess import api_side, balance_micros, data_uri, ledger, new_key, row
from sqlalchemy import update

from infinitetalk.errors import EngineError, NoFaceDetected
from infinitetalk.render.render import ChunkProgress
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus, utcnow

PER_SECOND = 30_000  # the default 480p rate, $0.03 a second, in micro-dollars


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Runtime]:
    with api_side(tmp_path, max_attempts=2, face_check=False) as runtime:
        yield runtime


@pytest.fixture
def key(api: Runtime) -> ApiKey:
    return new_key(api, "lifecycle", balance=10.0)


@pytest.fixture
def submit(api: Runtime, key: ApiKey, grace_hopper_path: Path, speech_wav: Path) -> Callable[[], Task]:
    body = {"image": data_uri(grace_hopper_path), "audio": [data_uri(speech_wav)]}

    def submit() -> Task:
        task, created = api.service.submit(key=key, payload=body, base_url="http://test")
        assert created and task.status == TaskStatus.QUEUED.value
        return task
    return submit


def _age_heartbeat(api: Runtime, task_id: str) -> None:
    """What a worker that died leaves: a running row whose heartbeat is older than ``stale_after_s``."""
    with api.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=api.settings.stale_after_s + 60)))


def test_a_queued_task_canceled_gives_the_whole_price_back_once(api: Runtime, key: ApiKey, submit) -> None:
    task = submit()
    assert task.price_micros == task.billed_seconds * PER_SECOND and task.billed_seconds >= 5
    assert balance_micros(api, key) == 10_000_000 - task.price_micros
    assert api.queue.depth() == 1  # its message waits for a worker

    assert api.lifecycle.cancel_queued(task.id)
    assert not api.lifecycle.cancel_queued(task.id)  # a second cancel changes nothing
    assert api.lifecycle.start(task.id) is None  # nor does a worker that takes its message late
    ended = row(api, task.id)
    assert ended.status == TaskStatus.CANCELED.value and ended.refund_micros == task.price_micros
    assert balance_micros(api, key) == 10_000_000
    assert ledger(api, key) == [("top_up", 10_000_000, None), ("reserve", -task.price_micros, task.id),
                                ("refund", task.price_micros, task.id)]


def test_a_failure_of_ours_gives_everything_back(api: Runtime, key: ApiKey, submit) -> None:
    task = submit()
    assert api.lifecycle.start(task.id) is not None
    running = row(api, task.id)
    assert (running.status, running.attempts, running.stage) == (TaskStatus.RUNNING.value, 1, "starting")

    api.lifecycle.failed(task.id, EngineError("the engine broke"))
    failed = row(api, task.id)
    assert (failed.status, failed.error_code, failed.refund_micros) == ("failed", "engine_error", task.price_micros)
    assert balance_micros(api, key) == 10_000_000


def test_a_callers_failure_pays_for_the_video_made(api: Runtime, key: ApiKey, submit) -> None:
    nothing_made, two_seconds_made = submit(), submit()
    for task in (nothing_made, two_seconds_made):
        assert api.lifecycle.start(task.id) is not None
    api.lifecycle.chunk_done(two_seconds_made.id, ChunkProgress(chunks_done=1, chunks=3, frames_done=50, frames=150,
                                                                fps=25, eta_s=4.0, segments=[]))
    for task in (nothing_made, two_seconds_made):
        api.lifecycle.failed(task.id, NoFaceDetected("no face was found in the picture", field="image"))

    free = row(api, nothing_made.id)
    assert (free.status, free.error_code, free.refund_micros) == ("failed", "no_face_detected", free.price_micros)
    # 2 s made: it pays the 5 s minimum, and the rest of the price comes back
    paid = row(api, two_seconds_made.id)
    assert paid.refund_micros == paid.price_micros - 5 * PER_SECOND
    assert balance_micros(api, key) == 10_000_000 - 5 * PER_SECOND


def test_a_requeued_task_runs_again_as_its_next_attempt(api: Runtime, submit) -> None:
    task = submit()
    assert api.lifecycle.start(task.id) is not None
    assert api.lifecycle.start(task.id) is None  # claimed once: a duplicate message finds it taken

    api.lifecycle.requeue(task.id)
    assert (row(api, task.id).status, row(api, task.id).stage) == (TaskStatus.QUEUED.value, None)
    assert api.lifecycle.start(task.id) is not None
    assert row(api, task.id).attempts == 2


def test_recover_queues_what_a_dead_process_left_running(api: Runtime, submit) -> None:
    left_running, still_queued = submit(), submit()
    assert api.lifecycle.start(left_running.id) is not None
    assert api.lifecycle.recover() == [left_running.id, still_queued.id]  # oldest first
    assert {row(api, t.id).status for t in (left_running, still_queued)} == {TaskStatus.QUEUED.value}


def test_a_stale_task_is_queued_again_then_failed_and_refunded_after_max_attempts(
        api: Runtime, key: ApiKey, submit) -> None:
    task = submit()
    assert api.lifecycle.start(task.id) is not None
    assert api.lifecycle.reap_stale() == []  # its heartbeat is fresh

    _age_heartbeat(api, task.id)
    assert api.lifecycle.reap_stale(alive={task.id}) == []  # this process runs it: a store problem, not a death
    assert api.lifecycle.reap_stale() == [task.id]
    assert row(api, task.id).status == TaskStatus.QUEUED.value

    assert api.lifecycle.start(task.id) is not None  # attempt 2 of max_attempts=2
    _age_heartbeat(api, task.id)
    assert api.lifecycle.reap_stale() == []
    lost = row(api, task.id)
    assert (lost.status, lost.attempts, lost.error_code) == (TaskStatus.FAILED.value, 2, "worker_lost")
    assert lost.refund_micros == task.price_micros and balance_micros(api, key) == 10_000_000
