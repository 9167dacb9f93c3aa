"""The task service (submit, get, list, cancel, idempotency) on a real store (SQLite in a temp folder), with real
inputs (a portrait, espeak speech) checked and priced as the API does. The API side of a fleet on Dramatiq's
StubBroker takes the submits, so tasks stay queued unless a test runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inprocess import api_side, balance_micros, data_uri, ledger, new_key, row

from infinitetalk.errors import Conflict, InvalidRequest, NoFaceDetected, NotFound
from infinitetalk.media.audio import probe_duration
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, TaskStatus


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Runtime]:
    with api_side(tmp_path) as runtime:
        yield runtime


@pytest.fixture
def key(api: Runtime) -> ApiKey:
    return new_key(api, "service", balance=10.0)


@pytest.fixture
def body(grace_hopper_path: Path, short_speech_wav: Path) -> dict:
    return {"image": data_uri(grace_hopper_path), "audio": [data_uri(short_speech_wav)], "seed": 7}


def test_a_submit_checks_stages_prices_and_queues(api: Runtime, key: ApiKey, body: dict,
                                                   short_speech_wav: Path) -> None:
    task, created = api.service.submit(key=key, payload=body, base_url="http://test/")
    assert created and task.status == TaskStatus.QUEUED.value and task.id.startswith("task_")
    assert task.audio_seconds == pytest.approx(probe_duration(short_speech_wav), abs=0.05)
    assert (task.billed_seconds, task.price_micros) == (5, 150_000)  # under 5 s of speech: the minimum
    assert task.base_url == "http://test"  # no trailing slash: output URLs are joined onto it
    # the inputs are in storage for whichever worker takes it, and its message is in the queue
    assert api.storage.open_inputs(task.id)
    assert api.queue.depth() == 1
    assert balance_micros(api, key) == 10_000_000 - 150_000

    got = api.service.get(key=key, task_id=task.id)
    assert (got.id, got.status, got.local_request) == (task.id, "queued", task.local_request)
    tasks, cursor = api.service.list(key=key)
    assert [t.id for t in tasks] == [task.id] and cursor is None


def test_a_portrait_without_a_face_is_refused_before_anything_is_charged(api: Runtime, key: ApiKey, body: dict,
                                                                        noise_png: Path) -> None:
    with pytest.raises(NoFaceDetected):
        api.service.submit(key=key, payload={**body, "image": data_uri(noise_png)}, base_url="http://test")
    with pytest.raises(InvalidRequest, match="audio"):
        api.service.submit(key=key, payload={"image": body["image"]}, base_url="http://test")
    assert balance_micros(api, key) == 10_000_000 and api.queue.depth() == 0
    assert api.service.list(key=key) == ([], None)


def test_a_task_is_seen_by_its_key_only(api: Runtime, key: ApiKey, body: dict) -> None:
    task, _ = api.service.submit(key=key, payload=body, base_url="http://test")
    other = new_key(api, "other")
    for who in (other, None):
        with pytest.raises(NotFound):
            api.service.get(key=who, task_id=task.id)
        with pytest.raises(NotFound):
            api.service.cancel(key=who, task_id=task.id)
    assert api.service.list(key=other) == ([], None)


def test_an_idempotent_retry_gets_the_same_task_charged_once(api: Runtime, key: ApiKey, body: dict) -> None:
    first, created = api.service.submit(key=key, payload=body, base_url="http://test", idempotency_key="retry-1")
    again, created_again = api.service.submit(key=key, payload=dict(reversed(body.items())), base_url="http://test",
                                              idempotency_key="retry-1")  # the same body, keys in another order
    assert created and not created_again and again.id == first.id
    assert [kind for kind, _, _ in ledger(api, key)] == ["top_up", "reserve"]
    with pytest.raises(Conflict) as refused:
        api.service.submit(key=key, payload={**body, "seed": 8}, base_url="http://test", idempotency_key="retry-1")
    assert refused.value.code == "idempotency_conflict"
    # another key's idempotency keys are its own
    _, created_by_other = api.service.submit(key=new_key(api, "other"), payload=body, base_url="http://test",
                                             idempotency_key="retry-1")
    assert created_by_other and api.queue.depth() == 2


def test_cancel_of_a_queued_task_refunds_it_and_a_finished_one_cannot_be(api: Runtime, key: ApiKey,
                                                                         body: dict) -> None:
    task, _ = api.service.submit(key=key, payload=body, base_url="http://test")
    canceled = api.service.cancel(key=key, task_id=task.id)
    assert canceled.status == TaskStatus.CANCELED.value and row(api, task.id).refund_micros == task.price_micros
    assert balance_micros(api, key) == 10_000_000
    with pytest.raises(Conflict) as refused:
        api.service.cancel(key=key, task_id=task.id)
    assert refused.value.code == "task_finished"
    assert [t.id for t in api.service.list(key=key, status=TaskStatus.CANCELED)[0]] == [task.id]
    assert api.service.list(key=key, status=TaskStatus.QUEUED) == ([], None)
