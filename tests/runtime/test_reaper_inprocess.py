"""The reaper (Reaper.reap, one round) on a real store (SQLite in a temp folder): a task whose worker died runs
again to its end; one this process is running is left alone; a queued task whose message the broker lost is sent
again. The dead worker is a fleet's API side on Dramatiq's StubBroker that claimed the task and never beat again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from inprocess import data_uri, new_key, row, settings_in, wait_ended, wait_for
from sqlalchemy import update

from infinitetalk.engines.instant import InstantEngine
from infinitetalk.runtime.broker import QUEUE
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus, utcnow


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[list[Runtime]]:
    made: list[Runtime] = []
    yield made
    for runtime in made:
        runtime.stop()


@pytest.fixture
def fleet_api(tmp_path: Path, runtimes: list[Runtime]) -> Runtime:
    runtime = Runtime(settings_in(tmp_path, broker_url=f"stub://{uuid.uuid4().hex}", face_check=False,
                                  redispatch_after_s=0))
    runtimes.append(runtime)
    return runtime


@pytest.fixture
def body(grace_hopper_path: Path, short_speech_wav: Path) -> dict:
    return {"image": data_uri(grace_hopper_path), "audio": [data_uri(short_speech_wav)]}


def _one_machine(data_dir: Path, runtimes: list[Runtime], *, frame_delay_s: float = 0.0) -> Runtime:
    runtime = Runtime(settings_in(data_dir, face_check=False), engine=InstantEngine(frame_delay_s=frame_delay_s))
    runtimes.append(runtime)
    return runtime


def _age_heartbeat(runtime: Runtime, task_id: str) -> None:
    with runtime.sessions.begin() as session:
        session.execute(update(Task).where(Task.id == task_id)
                        .values(heartbeat_at=utcnow() - timedelta(seconds=runtime.settings.stale_after_s + 60)))


def test_a_task_whose_worker_died_runs_again_to_its_end(tmp_path: Path, fleet_api: Runtime, runtimes: list[Runtime],
                                                          body: dict) -> None:
    key: ApiKey = new_key(fleet_api, "reaped")
    task, _ = fleet_api.service.submit(key=key, payload=body, base_url="http://test")
    assert fleet_api.lifecycle.start(task.id) is not None  # a worker took it, then died
    _age_heartbeat(fleet_api, task.id)

    machine = _one_machine(tmp_path, runtimes)  # not started: only the reaper's round brings the task back
    assert machine.reaper.reap() == [task.id]
    done = wait_ended(machine, task.id)
    assert (done.status, done.attempts, done.refunded) == (TaskStatus.SUCCEEDED.value, 2, False)


def test_a_task_this_process_runs_is_left_alone(tmp_path: Path, runtimes: list[Runtime], body: dict) -> None:
    machine = _one_machine(tmp_path, runtimes, frame_delay_s=0.03)
    task, _ = machine.service.submit(key=None, payload=body, base_url="http://test")
    wait_for(lambda: row(machine, task.id).status == TaskStatus.RUNNING.value, what="the task to start")
    _age_heartbeat(machine, task.id)  # a store that missed its beats, not a dead worker
    assert machine.reaper.reap() == []
    assert row(machine, task.id).status == TaskStatus.RUNNING.value
    assert wait_ended(machine, task.id).status == TaskStatus.SUCCEEDED.value
    assert row(machine, task.id).attempts == 1


def test_a_queued_task_whose_message_was_lost_is_sent_again(fleet_api: Runtime, body: dict) -> None:
    task, _ = fleet_api.service.submit(key=None, payload=body, base_url="http://test")
    assert fleet_api.queue.depth() == 1
    fleet_api.reaper.reap()
    assert fleet_api.queue.depth() == 1  # its message is there: nothing sent twice

    fleet_api.queue.broker.flush(QUEUE)  # the broker lost its data
    assert fleet_api.queue.depth() == 0
    assert fleet_api.reaper.reap() == []
    assert fleet_api.queue.depth() == 1 and row(fleet_api, task.id).status == TaskStatus.QUEUED.value
