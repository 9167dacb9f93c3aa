"""quota_lock: a check and the write it guards are one step per key, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infinitetalk.config import Settings
from infinitetalk.tasks.db import SessionFactory, open_database
from infinitetalk.tasks.locks import lock_number, quota_lock
from infinitetalk.tasks.models import Upload, utcnow

CAP = 3
RACERS = 16


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionFactory]:
    url = None
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres").create_database(f"locks_{uuid.uuid4().hex[:12]}")
    engine, factory = open_database(Settings(data_dir=tmp_path, database_url=url))
    try:
        yield factory
    finally:
        engine.dispose()


def _race(sessions: SessionFactory, key_id: str | None,
          transaction: Callable[[], AbstractContextManager[Session]]) -> int:
    """RACERS threads each count the key's rows and add one while there are fewer than CAP; the rows made."""
    start = threading.Barrier(RACERS)
    owner = Upload.api_key_id.is_(None) if key_id is None else Upload.api_key_id == key_id

    def one() -> None:
        start.wait()
        with transaction() as session:
            held = session.scalar(select(func.count()).select_from(Upload).where(owner))
            if held < CAP:
                session.add(Upload(id=f"upl_{uuid.uuid4().hex[:22]}", api_key_id=key_id, filename="f", size=1,
                                   complete=True, expires_at=utcnow() + timedelta(hours=1)))

    threads = [threading.Thread(target=one) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Upload).where(owner))


@pytest.mark.parametrize("key_id", ["key_a", None])
def test_a_check_and_its_write_are_one_step(sessions: SessionFactory, key_id: str | None) -> None:
    assert _race(sessions, key_id, lambda: quota_lock(sessions, key_id)) == CAP


def test_keys_do_not_share_a_quota(sessions: SessionFactory) -> None:
    for key_id in ("key_a", "key_b", None):
        assert _race(sessions, key_id, lambda key_id=key_id: quota_lock(sessions, key_id)) == CAP


def test_an_error_inside_rolls_back_and_lets_the_next_caller_in(sessions: SessionFactory) -> None:
    with contextlib.suppress(RuntimeError), quota_lock(sessions, "key_a") as session:
        session.add(Upload(id="upl_rolled_back", api_key_id="key_a", filename="f", size=1, complete=True,
                           expires_at=utcnow() + timedelta(hours=1)))
        session.flush()
        raise RuntimeError("refused")
    assert _race(sessions, "key_a", lambda: quota_lock(sessions, "key_a")) == CAP


def test_lock_numbers_are_stable_and_per_key() -> None:
    assert lock_number("key_a") == lock_number("key_a")
    assert len({lock_number("key_a"), lock_number("key_b"), lock_number(None)}) == 3
    assert all(-2**63 <= lock_number(key) < 2**63 for key in ("key_a", None))
