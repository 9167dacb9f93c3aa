"""One key's quota checks, one at a time, on every store.

A quota is a count of rows (uploads and their bytes, queued tasks, unfinished tasks, creates a minute); checked
and then written in two steps, concurrent requests all pass the check before any of them writes. ``quota_lock``
is one transaction that holds a lock of the key's (open mode's key-less callers share one) from its first
statement to its commit, so the check and the write it guards are one step: the next caller's check sees what
this one wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from infinitetalk.tasks.db import SessionFactory


def lock_number(key_id: str | None) -> int:
    """The PostgreSQL advisory lock of ``key_id``'s quotas (None: open mode's callers), a signed 64-bit number the
    same in every process. Two keys sharing a number only wait on each other; they never share a quota."""
    digest = hashlib.blake2b(f"infinitetalk-quota:{key_id or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def quota_lock(sessions: SessionFactory, key_id: str | None) -> Iterator[Session]:
    """A transaction (committed when the block ends, rolled back on an error) in which ``key_id``'s quota checks
    and the writes they guard run one caller at a time."""
    with sessions.begin() as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            # a lock of the key's own, not its row: key-less callers have no row, and it is released by the
            # commit or rollback, whatever ends the transaction
            connection.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock_number(key_id)})
        elif connection.dialect.name == "sqlite":
            # SQLite has one lock, the whole file's write lock: taken before the first read (Python's sqlite3
            # would begin only at the first write, and reads before it see no later commits); a caller waits
            # for it in busy_timeout. Transactions here are a few statements long.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield session
