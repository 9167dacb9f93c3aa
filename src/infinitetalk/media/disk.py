"""Writes that fail because the disk is full, told apart from every other OSError.

A full disk is our condition, not the caller's: it must reach them as ``storage_full`` (retry later),
not as a bare 500, and never as an OSError text that names our folders.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from infinitetalk.errors import StorageFull

#: No space left, over a quota, over a file-size limit (RLIMIT_FSIZE or the filesystem's own).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an error it was raised from, is a write refused for lack of room.

    The chain matters: the MP4 writer and the engines wrap what failed under them.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


@contextmanager
def disk_writes(field: str | None = None) -> Iterator[None]:
    """Turn a full disk inside the block into StorageFull; every other error passes unchanged."""
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc):
            raise StorageFull(field=field) from exc
        raise
