"""What a task's view says while a cancel is pending and once it has ended (issue 21): the view is built from the
row the same way on either store, so these run on SQLite only."""

from __future__ import annotations

import pytest
from api_servers import FileServer, Server, long_task, make_key, wait_until

pytestmark = pytest.mark.sqlite_only



def test_a_pending_cancel_shows_and_an_ended_task_has_no_stage(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "cancel-watcher", balance=5.0)
    client = keyed_server.client(key["key"])
    task = client.submit(long_task(file_server))
    assert task["cancel_requested"] is False
    running = wait_until(lambda: (t := client.get(task["id"]))["status"] == "running"
                         and t["progress"]["fraction"] > 0.05 and t, timeout=60, what="the task to be running")
    assert running["progress"]["stage"] and running["cancel_requested"] is False
    answer = client.cancel(task["id"])
    # the worker stops at its next step: until then the task still runs, and says a cancel is on its way
    assert answer["cancel_requested"] is True and answer["status"] in ("running", "canceled")
    done = client.wait(task["id"], timeout=60)
    assert done["status"] == "canceled" and done["cancel_requested"] is True
    assert done["progress"]["stage"] is None, done["progress"]  # no "generating" left on a task that has stopped


@pytest.mark.parametrize(("status", "stage", "chunks", "shown"), [
    # the engine on chunk 2, chunk 1's segment not yet stored: none finished, but the stage knows the count
    ("running", "chunk 2/33", None, {"stage": "chunk 2/33", "chunk": 0, "chunks": 33}),
    # the neural engine's steps; ``chunk`` counts the chunks with a segment, whatever the engine is on
    ("running", "chunk 3/33, step 2/8", {"done": 1, "count": 33, "frames_done": 72, "frames": 2376, "fps": 25},
     {"chunk": 1, "chunks": 33, "frames": 2376, "frames_done": 72}),
    ("running", "joining", {"done": 33, "count": 33, "frames_done": 2376, "frames": 2376, "fps": 25},
     {"stage": "joining", "chunk": 33, "chunks": 33}),
    # a task that has stopped no longer does what it last did
    ("failed", "finding faces", None, {"stage": None, "chunk": None}),
    ("succeeded", "joining", {"done": 3, "count": 3, "frames_done": 216, "frames": 216, "fps": 25},
     {"stage": None, "chunk": 3, "chunks": 3}),
])
def test_progress_agrees_with_its_stage(status: str, stage: str, chunks: dict | None, shown: dict) -> None:
    from infinitetalk.tasks.models import Task
    from infinitetalk.tasks.views import _progress

    progress = _progress(Task(status=status, stage=stage, chunks=chunks, progress=0.1)).model_dump()
    assert {name: progress[name] for name in shown} == shown


# --- the README's list of what answers without a key is the server's ---------------------------------------------
def _readme_keyless_paths() -> list[str]:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    sentence = re.search(r"Every API call needs an API key.*?answer without one: (.*?)\.\s", readme, re.S)
    assert sentence, "README: the sentence that lists what needs no key"
    return re.findall(r"`(/[a-z.]*)`", sentence[1])


def test_what_the_readme_says_needs_no_key_needs_none(keyed_server: Server) -> None:
    import httpx

    paths = _readme_keyless_paths()
    assert {"/", "/docs", "/healthz", "/readyz", "/metrics"} <= set(paths)
    for path in paths:
        answer = httpx.get(keyed_server.url + path, timeout=30)
        assert answer.status_code == 200, (path, answer.status_code)
    assert httpx.get(keyed_server.url + "/v1/tasks", timeout=30).status_code == 401  # the API itself needs one


def test_eta_is_measured_by_this_run_only() -> None:
    from datetime import timedelta

    from infinitetalk.tasks.models import Task, utcnow
    from infinitetalk.tasks.views import _eta

    now = utcnow()
    earlier_chunk = {"done": 10, "count": 33, "frames_done": 720, "frames": 2376, "fps": 25, "eta_s": 97.0,
                     "at": (now - timedelta(seconds=40)).isoformat()}
    # a first run: its own rate
    first = Task(status="running", attempts=1, progress=0.5, started_at=now - timedelta(seconds=100), chunks=None)
    assert _eta(first) == pytest.approx(100, abs=2)
    # requeued and started again 10 s ago: the last run's chunk and the whole task's progress say nothing of this
    # run's speed (it loads, prepares, catches up): no number until this run has finished a chunk
    again = Task(status="running", attempts=2, progress=0.5, started_at=now - timedelta(seconds=10),
                 chunks=earlier_chunk)
    assert _eta(again) is None
    # once it has, that chunk's estimate counts down
    measured = {**earlier_chunk, "eta_s": 80.0, "at": (now - timedelta(seconds=5)).isoformat()}
    again.chunks = measured
    assert _eta(again) == pytest.approx(75, abs=2)
