"""Per-key limits, counted from the tasks table (so they hold across restarts and API processes).

- creates per minute, over a sliding 60 s window;
- unfinished (queued + running) tasks at once;
- queued tasks at once (every key, and open mode's key-less callers together), so nobody can fill the queue.

A count holds only when it is read in the transaction that writes the task, under the key's quota lock
(``tasks.locks``); read anywhere else it is an early refusal that spares the work before the write.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infinitetalk.errors import Forbidden, TooManyRequests
from infinitetalk.tasks.models import UNFINISHED, ApiKey, Task, TaskStatus, utcnow

WINDOW = timedelta(seconds=60)
#: A concurrency slot frees when a task ends; this is how soon we suggest trying again.
CONCURRENCY_RETRY_S = 5
QUEUE_RETRY_S = 10


def check_model(key: ApiKey | None, model: str) -> None:
    if key is None or not key.allowed_models or "*" in key.allowed_models or model in key.allowed_models:
        return
    raise Forbidden(f"this API key may not use model '{model}' (allowed: {', '.join(key.allowed_models)})")


def check_queued(session: Session, key: ApiKey | None, max_queued: int) -> None:
    owner = Task.api_key_id.is_(None) if key is None else Task.api_key_id == key.id
    queued = session.scalar(select(func.count()).select_from(Task).where(owner, Task.status == TaskStatus.QUEUED.value))
    if queued >= max_queued:
        raise TooManyRequests(
            f"{'this key has' if key else 'there are'} {queued} tasks waiting in the queue, the most allowed; "
            "wait for some to start", retry_after=QUEUE_RETRY_S, code="queue_limited")


def check_limits(session: Session, key: ApiKey | None, *, max_queued: int | None = None) -> None:
    if max_queued is not None:
        check_queued(session, key, max_queued)
    if key is None:
        return
    now = utcnow()
    if key.creates_per_minute is not None:
        recent = list(
            session.scalars(
                select(Task.created_at)
                .where(Task.api_key_id == key.id, Task.created_at > now - WINDOW)
                .order_by(Task.created_at)
            )
        )
        if len(recent) >= key.creates_per_minute:
            # the window frees a slot when its oldest create is a minute old
            oldest = recent[len(recent) - key.creates_per_minute]
            wait = (oldest + WINDOW - now).total_seconds()
            raise TooManyRequests(
                f"this key may create {key.creates_per_minute} tasks a minute; try again in {math.ceil(wait)} s",
                retry_after=math.ceil(wait),
            )
    if key.max_concurrent is not None:
        running = session.scalar(
            select(func.count()).select_from(Task).where(Task.api_key_id == key.id, Task.status.in_(UNFINISHED))
        )
        if running >= key.max_concurrent:
            raise TooManyRequests(
                f"this key may have {key.max_concurrent} unfinished tasks at once; wait for one to end",
                retry_after=CONCURRENCY_RETRY_S,
                code="concurrency_limited",
            )
