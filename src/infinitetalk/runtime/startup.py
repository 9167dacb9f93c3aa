"""Start-up waits: ``serve`` and ``worker`` wait for the database, the broker and the bucket they need, with one
log line per retry, and give up after ``startup_wait_s`` with one error (a driver's traceback helps nobody here:
a store that is still starting beside us, in compose or systemd, is the usual cause, and it passes)."""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from infinitetalk.config import Settings
from infinitetalk.errors import StorageUnavailable, Unreachable
from infinitetalk.storage import Storage, open_storage
from infinitetalk.tasks.db import SessionFactory, database_url, open_database

log = logging.getLogger("infinitetalk.startup")

T = TypeVar("T")

#: Pause after the first failed try, doubled after each one up to the longest: a minute's wait logs about
#: fifteen lines, not sixty, and a part that comes up is still found within seconds.
FIRST_RETRY_S, LONGEST_RETRY_S = 1.0, 5.0


def wait_for(part: str, where: str, attempt: Callable[[], T], *, retry_on: tuple[type[BaseException], ...],
             wait_s: float, hint: str) -> T:
    """``attempt()``'s value, tried again while it raises one of ``retry_on``, until ``wait_s`` has passed."""
    deadline = time.monotonic() + wait_s
    delay = FIRST_RETRY_S
    while True:
        try:
            return attempt()
        except retry_on as exc:
            reason, left = _reason(exc), deadline - time.monotonic()
            if left <= 0:
                within = f" within {wait_s:g} s" if wait_s else ""
                raise Unreachable(f"the {part} at {where} did not answer{within} ({reason}); {hint}") from None
            pause = min(delay, left)
            log.warning("waiting for the %s at %s (%s); trying again in %.0f s", part, where, reason, pause)
            time.sleep(pause)
            delay = min(delay * 2, LONGEST_RETRY_S)


def _reason(exc: BaseException) -> str:
    """The driver's own words, first line only (psycopg adds hints on further lines; SQLAlchemy adds SQL)."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None:  # boto's words, not our long advice
        original = exc.__cause__
    lines = str(original).strip().splitlines()
    first = lines[0].strip() if lines else type(original).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def redacted(url: str | None) -> str:
    """A URL for the log and the console, without its password."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urllib.parse.urlunsplit(parts)


def open_database_waiting(settings: Settings) -> tuple[Engine, SessionFactory]:
    """``open_database(settings)`` (connected and migrated), waiting for the database to answer."""
    shown = make_url(database_url(settings)).render_as_string(hide_password=True)
    return wait_for("database", shown, lambda: open_database(settings), retry_on=(DBAPIError,),
                    wait_s=settings.startup_wait_s,
                    hint="check INFINITETALK_DATABASE_URL (or --database) and that the server is running")


def wait_for_broker(settings: Settings) -> None:
    """The broker (Redis) answers a PING."""
    import redis

    def ping() -> None:
        client = redis.Redis.from_url(settings.broker_url or "", socket_connect_timeout=5, socket_timeout=5)
        try:
            client.ping()
        finally:
            client.close()

    wait_for("broker", redacted(settings.broker_url), ping, retry_on=(redis.RedisError, OSError),
             wait_s=settings.startup_wait_s,
             hint="check INFINITETALK_BROKER_URL (or --broker) and that Redis is running")


def open_storage_waiting(settings: Settings) -> Storage:
    """``open_storage(settings)``, waiting for an S3 bucket to answer (local folders answer at once)."""
    where = f"{settings.storage_url}" + (f" ({settings.s3_endpoint_url})" if settings.s3_endpoint_url else "")
    return wait_for("bucket", where, lambda: open_storage(settings), retry_on=(StorageUnavailable,),
                    wait_s=settings.startup_wait_s,
                    hint="check INFINITETALK_STORAGE_URL, INFINITETALK_S3_ENDPOINT_URL, the AWS credentials, and "
                         "that the bucket exists")


def wait_for_parts(settings: Settings) -> tuple[Engine, SessionFactory]:
    """Wait for every part ``settings`` names, in the order a start needs them; raise ``Unreachable`` for the
    first that never answers. Returns the (migrated) database's engine, for the caller to dispose of, and its
    sessions."""
    db, sessions = open_database_waiting(settings)
    try:
        if settings.broker_url:
            wait_for_broker(settings)
        if settings.storage_url:
            open_storage_waiting(settings)
    except BaseException:
        db.dispose()
        raise
    return db, sessions
