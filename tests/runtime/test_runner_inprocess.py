"""Tasks run to their end by the real runner on one machine's wiring (Runtime: the in-process dispatcher's render
threads, the lifecycle, local storage, SQLite in a temp folder), each with real inputs and a real video out."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from inprocess import (
    balance_micros,
    data_uri,
    new_key,
    row,
    settings_in,
    wait_ended,
    wait_for,
)

from infinitetalk.engines.instant import InstantEngine
from infinitetalk.media.probe import probe
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus

PER_SECOND = 30_000  # the default 480p rate, in micro-dollars
FRAMES_PER_CHUNK = 72  # render.py's chunk of an engine that makes frames one by one


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """One machine's task service with the instant engine (``frame_delay_s`` slows it down), not its HTTP side."""
    made: list[Runtime] = []

    def make(*, frame_delay_s: float = 0.0, engine: object = None, **settings: object) -> Runtime:
        # the face check at submit is test_service_inprocess's business; the runs here need no mediapipe
        runtime = Runtime(settings_in(tmp_path / f"data{len(made)}", **{"face_check": False, **settings}),
                          engine=engine or InstantEngine(frame_delay_s=frame_delay_s))
        made.append(runtime)
        return runtime
    yield make
    for runtime in made:
        runtime.stop()


def _submit(runtime: Runtime, key: ApiKey, image: Path, speech: Path) -> Task:
    task, created = runtime.service.submit(key=key, payload={"image": data_uri(image), "audio": [data_uri(speech)]},
                                           base_url="http://test")
    assert created
    return task


def test_a_task_succeeds_with_its_video_and_keeps_its_charge(machine, grace_hopper_path: Path,
                                                               short_speech_wav: Path) -> None:
    runtime = machine()
    key = new_key(runtime, "runner")
    task = _submit(runtime, key, grace_hopper_path, short_speech_wav)
    done = wait_ended(runtime, task.id)
    assert (done.status, done.progress, done.stage, done.attempts) == (TaskStatus.SUCCEEDED.value, 1.0, "done", 1)
    assert done.seed is not None and not done.refunded
    [(name, meta)] = done.outputs.items()
    video = runtime.storage.output_path(task.id).parent / name
    measured = probe(video)
    assert abs(measured.duration_s - done.audio_seconds) < 0.2, (measured.duration_s, done.audio_seconds)
    assert meta["fps"] == 25 and meta["duration_s"] == pytest.approx(measured.duration_s, abs=0.1)
    assert balance_micros(runtime, key) == 10_000_000 - task.price_micros


def test_a_callers_input_that_fails_the_render_is_free(machine, noise_png: Path, short_speech_wav: Path) -> None:
    from infinitetalk.engines import load_engine

    # the face check at submit is off, so the preview engine is the one that finds no face in the noise
    settings = settings_in(Path("unused"), face_check=False, engine="preview")
    runtime = machine(face_check=False, engine=load_engine(settings))
    key = new_key(runtime, "no face")
    task = _submit(runtime, key, noise_png, short_speech_wav)
    failed = wait_ended(runtime, task.id, timeout=60)
    assert (failed.status, failed.error_code, failed.error_detail) == ("failed", "no_face_detected", "caller")
    assert "face" in failed.error_message
    assert failed.refund_micros == task.price_micros and balance_micros(runtime, key) == 10_000_000


def test_a_cancel_while_running_pays_for_the_chunks_made_and_keeps_them(machine, grace_hopper_path: Path,
                                                                        speech_wav: Path) -> None:
    runtime = machine(frame_delay_s=0.03)
    key = new_key(runtime, "canceler")
    task = _submit(runtime, key, grace_hopper_path, speech_wav)  # ~6 s of speech: 3 chunks
    wait_for(lambda: (row(runtime, task.id).chunks or {}).get("done", 0) >= 1, what="a first finished chunk")
    assert runtime.service.cancel(key=key, task_id=task.id).status == TaskStatus.RUNNING.value  # flagged only

    canceled = wait_ended(runtime, task.id)
    assert canceled.status == TaskStatus.CANCELED.value
    [(name, meta)] = canceled.outputs.items()
    assert meta["partial"] is True
    made_s = probe(runtime.storage.output_path(task.id).parent / name).duration_s
    assert made_s == pytest.approx(canceled.chunks["done"] * FRAMES_PER_CHUNK / 25, abs=0.1)
    assert made_s < canceled.audio_seconds
    # it pays for the video made, in whole seconds (at least the 5 s minimum); the rest of the price comes back
    paid = max(5, math.ceil(made_s - 0.01)) * PER_SECOND
    assert paid < task.price_micros and canceled.refund_micros == task.price_micros - paid
    assert balance_micros(runtime, key) == 10_000_000 - paid


def test_a_task_past_the_timeout_fails_refunded(machine, grace_hopper_path: Path, short_speech_wav: Path) -> None:
    runtime = machine(frame_delay_s=0.05, task_timeout_s=0.5)  # ~40 frames: 2 s of rendering
    key = new_key(runtime, "slow")
    task = _submit(runtime, key, grace_hopper_path, short_speech_wav)
    failed = wait_ended(runtime, task.id)
    assert (failed.status, failed.error_code, failed.error_detail) == ("failed", "timeout", "server")
    assert "0.5 s limit" in failed.error_message
    assert failed.refund_micros == task.price_micros and balance_micros(runtime, key) == 10_000_000
