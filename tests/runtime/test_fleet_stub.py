"""A fleet in one process: an API side (Runtime) and a worker (WorkerRuntime) built from the same settings, whose
TaskQueues meet on Dramatiq's StubBroker (``stub://``) instead of Redis. Everything else is the fleet's own code
path: the dispatcher sends the task id, a dramatiq.Worker delivers it to the worker's actor, the worker claims the
row and runs it on its engine, and a cancel reaches it only through the store's flag."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from inprocess import data_uri, new_key, row, settings_in, wait_ended, wait_for

from infinitetalk.engines.instant import InstantEngine
from infinitetalk.media.probe import probe
from infinitetalk.runtime.broker import QUEUE
from infinitetalk.runtime.server import Runtime
from infinitetalk.runtime.worker import WorkerRuntime
from infinitetalk.tasks.models import TaskStatus

PER_SECOND = 30_000  # the default 480p rate, in micro-dollars


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Runtime, WorkerRuntime]]:
    # no storage URL: the worker shares the API's data folder, as workers on the API's machine do
    settings = settings_in(tmp_path, broker_url=f"stub://{uuid.uuid4().hex}", face_check=False)
    api = Runtime(settings)
    worker = WorkerRuntime(settings, engine=InstantEngine(frame_delay_s=0.03))
    # what WorkerRuntime.serve starts, without its wait for SIGTERM
    consumer = dramatiq.Worker(worker.queue.broker, queues={QUEUE}, worker_threads=1, worker_timeout=100)
    consumer.start()
    try:
        yield api, worker
    finally:
        consumer.stop()
        worker.registration.stop()
        worker.db.dispose()
        api.stop()


def test_a_task_sent_to_the_queue_is_run_by_the_worker(fleet: tuple[Runtime, WorkerRuntime],
                                                        grace_hopper_path: Path, short_speech_wav: Path) -> None:
    api, worker = fleet
    assert api.engine is None  # the API side renders nothing itself
    key = new_key(api, "fleet")
    task, _ = api.service.submit(key=key, payload={"image": data_uri(grace_hopper_path),
                                                   "audio": [data_uri(short_speech_wav)]}, base_url="http://test")
    done = wait_ended(api, task.id)
    assert (done.status, done.worker_id, done.attempts) == (TaskStatus.SUCCEEDED.value, worker.registration.id, 1)
    [name] = done.outputs
    assert (api.storage.output_path(task.id).parent / name).stat().st_size > 0
    assert api.queue.depth() == 0


def test_a_cancel_reaches_the_worker_through_the_store(fleet: tuple[Runtime, WorkerRuntime],
                                                        grace_hopper_path: Path, speech_wav: Path) -> None:
    api, _ = fleet
    key = new_key(api, "fleet")
    task, _ = api.service.submit(key=key, payload={"image": data_uri(grace_hopper_path),
                                                   "audio": [data_uri(speech_wav)]}, base_url="http://test")
    wait_for(lambda: (row(api, task.id).chunks or {}).get("done", 0) >= 1, what="a first finished chunk")
    api.service.cancel(key=key, task_id=task.id)  # the API's dispatcher cannot reach the worker: only the flag
    canceled = wait_ended(api, task.id)
    assert canceled.status == TaskStatus.CANCELED.value
    [(name, meta)] = canceled.outputs.items()
    made_s = probe(api.storage.output_path(task.id).parent / name).duration_s
    assert meta["partial"] is True and made_s < canceled.audio_seconds
    # it pays for the video made, in whole seconds (at least the 5 s minimum); the rest of the price comes back
    assert canceled.refund_micros == task.price_micros - max(5, math.ceil(made_s - 0.01)) * PER_SECOND
