"""Per-key quotas hold under concurrent requests, as the balance does: the check and the write it guards are one
serialized step per key, on both stores. Uploads (count and bytes, the two-step PUT's bytes as they stream), the
queue cap of open mode's key-less callers, and a key's concurrency and rate limits. A multipart submit's files
belong to its task and never count as the key's uploads.

The server is an API of a fleet with no workers (tasks go to a Redis queue nobody reads), so every accepted task
stays queued and the counts below are exact."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from api_servers import Server, make_key, settings_for
from sqlalchemy import func, select

from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.models import Task, Upload

T = TypeVar("T")

QUEUE_CAP = 3
UPLOAD_COUNT_CAP = 5
UPLOAD_BYTES_CAP = 250_000
RACERS = 40


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_store: str, redis_url: str) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("quota-data")
    env = {
        # a database of its own on the session's Redis: the fleet tests' workers never see these messages
        "INFINITETALK_BROKER_URL": redis_url.rsplit("/", 1)[0] + "/7",
        "INFINITETALK_MAX_QUEUED_PER_KEY": str(QUEUE_CAP),
        "INFINITETALK_MAX_UPLOADS_PER_KEY": str(UPLOAD_COUNT_CAP),
        "INFINITETALK_MAX_UPLOAD_BYTES_PER_KEY": str(UPLOAD_BYTES_CAP),
        "INFINITETALK_FACE_CHECK": "false",  # the inputs are the same good ones every time: spare the CPU
    }
    with Server(data_dir, env=env, open_mode=True) as server:
        yield server


def _at_once(count: int, call: Callable[[int], T]) -> list[T]:
    """``call(i)`` for i in range(count), on as many threads released together."""
    start = threading.Barrier(count)
    results: list[T | None] = [None] * count

    def run(index: int) -> None:
        start.wait()
        results[index] = call(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results  # type: ignore[return-value]


def _store_counts(data_dir: Path, key_id: str | None) -> tuple[int, int, int]:
    """(upload rows, their bytes, queued tasks) that ``key_id`` (None: open mode's callers) holds in the store."""
    db, sessions = open_database(settings_for(data_dir))
    try:
        with sessions() as session:
            uploads_owner = Upload.api_key_id.is_(None) if key_id is None else Upload.api_key_id == key_id
            tasks_owner = Task.api_key_id.is_(None) if key_id is None else Task.api_key_id == key_id
            count, size = session.execute(select(func.count(), func.coalesce(func.sum(Upload.size), 0))
                                          .where(uploads_owner)).one()
            queued = session.scalar(select(func.count()).select_from(Task)
                                    .where(tasks_owner, Task.status == "queued"))
            return count, int(size), queued
    finally:
        db.dispose()


def _codes(responses: list[httpx.Response]) -> dict[int, int]:
    counted: dict[int, int] = {}
    for response in responses:
        counted[response.status_code] = counted.get(response.status_code, 0) + 1
    return counted


def _error_codes(responses: list[httpx.Response]) -> set[str]:
    return {response.json()["error"]["code"] for response in responses if response.status_code != 202}


def test_concurrent_uploads_keep_exactly_the_count_quota(server: Server) -> None:
    key = make_key(server.data_dir, "uploader")
    with httpx.Client(base_url=server.url, headers={"X-API-Key": key["key"]}, timeout=60) as http:
        answers = _at_once(RACERS, lambda i: http.post("/v1/uploads", files={"file": (f"f{i}.bin", b"x" * 10)}))
    assert _codes(answers) == {201: UPLOAD_COUNT_CAP, 429: RACERS - UPLOAD_COUNT_CAP}
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 429} == {"upload_quota_exceeded"}
    assert _store_counts(server.data_dir, key["id"])[0] == UPLOAD_COUNT_CAP


def test_size_less_tickets_put_at_once_never_store_more_than_the_byte_quota(server: Server) -> None:
    key = make_key(server.data_dir, "wavespeed-sdk")
    body = b"y" * 100_000  # five of them are twice the quota
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=60) as http:

        def ticket(i: int) -> str:
            answer = http.post("/api/v3/media/uploads", json={"filename": f"part{i}.bin"})
            assert answer.status_code == 200, answer.text
            return answer.json()["data"]["upload"]["url"]

        urls = [ticket(i) for i in range(UPLOAD_COUNT_CAP)]
        puts = _at_once(len(urls), lambda i: httpx.put(urls[i], content=body, timeout=60))
        stored = [put for put in puts if put.status_code == 200]
        refused = [put for put in puts if put.status_code != 200]
        assert refused and {put.status_code for put in refused} == {429}, [put.text for put in puts]
        assert len(stored) * len(body) <= UPLOAD_BYTES_CAP
        # a refused PUT leaves nothing: neither its row (nor the quota it held) nor a file
        count, size, _ = _store_counts(server.data_dir, key["id"])
        assert (count, size) == (len(stored), len(stored) * len(body))
        on_disk = sum(path.stat().st_size for path in (server.data_dir / "uploads").rglob("*") if path.is_file()
                      and path.parent.name in {url.rsplit("/", 1)[1] for url in urls})
        assert on_disk == size
        # and what the race left free can still be filled, up to the quota and no further
        while (answer := httpx.put(ticket(9), content=body, timeout=60)).status_code == 200:
            stored.append(answer)
        assert answer.status_code == 429 and "quota" in answer.json()["message"]
        assert len(stored) == UPLOAD_BYTES_CAP // len(body)


def _racing_submits(http: httpx.Client, grace_hopper_path: Path, short_speech_wav: Path) -> list[httpx.Response]:
    """RACERS submits at once, their inputs uploaded once beforehand (input URLs have a per-key cap of their own
    on downloads at once, which would answer first)."""
    refs = {}
    for field, path in (("image", grace_hopper_path), ("audio", short_speech_wav)):
        answer = http.post("/v1/uploads", files={"file": (path.name, path.read_bytes())})
        assert answer.status_code == 201, answer.text
        refs[field] = answer.json()["id"]
    return _at_once(RACERS, lambda _: http.post("/v1/tasks", json=refs))


def test_open_mode_queue_cap_holds_under_concurrent_submits(server: Server, grace_hopper_path: Path,
                                                            short_speech_wav: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answers = _racing_submits(http, grace_hopper_path, short_speech_wav)
        assert _codes(answers) == {202: QUEUE_CAP, 429: RACERS - QUEUE_CAP}, _error_codes(answers)
        assert _error_codes(answers) == {"queue_limited"}
        assert _store_counts(server.data_dir, None)[2] == QUEUE_CAP


@pytest.mark.parametrize(("limit", "code"), [({"max_concurrent": 2}, "concurrency_limited"),
                                             ({"rate": 2}, "rate_limited")])
def test_key_limits_hold_under_concurrent_submits(server: Server, grace_hopper_path: Path, short_speech_wav: Path,
                                                  limit: dict, code: str) -> None:
    key = make_key(server.data_dir, code, balance=100.0, **limit)
    with httpx.Client(base_url=server.url, headers={"X-API-Key": key["key"]}, timeout=60) as http:
        answers = _racing_submits(http, grace_hopper_path, short_speech_wav)
    assert _codes(answers) == {202: 2, 429: RACERS - 2}, _error_codes(answers)
    assert _error_codes(answers) == {code}
    assert _store_counts(server.data_dir, key["id"])[2] == 2


def test_a_multipart_submits_files_belong_to_its_task(server: Server, grace_hopper_path: Path,
                                                      short_speech_wav: Path) -> None:
    key = make_key(server.data_dir, "multipart", balance=100.0)
    form = {"image": ("face.jpg", grace_hopper_path.read_bytes()), "audio": ("speech.wav",
                                                                            short_speech_wav.read_bytes())}
    folders_before = set((server.data_dir / "uploads").glob("*"))
    with httpx.Client(base_url=server.url, headers={"X-API-Key": key["key"]}, timeout=60) as http:
        for _ in range(UPLOAD_COUNT_CAP + 1):  # two files each: the quota's worth of uploads three times over
            answer = http.post("/v1/tasks", files=form)
            assert answer.status_code == 202, answer.text
            assert _store_counts(server.data_dir, key["id"])[0] == 0
            # the task has its inputs; it is canceled only to stay under the queue cap
            assert http.post(f"/v1/tasks/{answer.json()['id']}/cancel").status_code == 202
        # a refused submit leaves none either
        refused = http.post("/v1/tasks", files={**form, "resolution": (None, "9000p")})
        assert refused.status_code == 400
        assert _store_counts(server.data_dir, key["id"])[0] == 0
        assert set((server.data_dir / "uploads").glob("*")) == folders_before
