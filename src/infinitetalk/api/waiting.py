"""Waiting on a task without holding a thread: `Prefer: wait=N` and server-sent events."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from infinitetalk.tasks.models import ApiKey, Task
from infinitetalk.tasks.runtime import Runtime
from infinitetalk.tasks.views import task_public

POLL_S = 0.2
KEEPALIVE_S = 15.0
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def prefer_wait(header: str | None, max_wait_s: int) -> int | None:
    """Seconds asked for by an RFC 7240 `Prefer: wait=N` header, capped at ``max_wait_s``."""
    match = _WAIT.search(header or "")
    return min(int(match.group(1)), max_wait_s) if match else None


async def _get(runtime: Runtime, key: ApiKey | None, task_id: str) -> Task:
    return await run_in_threadpool(runtime.service.get, key=key, task_id=task_id)


async def wait_for_end(runtime: Runtime, key: ApiKey | None, task_id: str, seconds: float) -> Task:
    deadline = time.monotonic() + seconds
    while True:
        task = await _get(runtime, key, task_id)
        left = deadline - time.monotonic()
        if task.state.terminal or left <= 0:
            return task
        await asyncio.sleep(min(POLL_S, left))


async def task_events(runtime: Runtime, key: ApiKey | None, task_id: str) -> AsyncIterator[str]:
    """`progress` events while the task changes, then one `done` event with the final task."""
    last, sent_at, number = None, time.monotonic(), 0
    while True:
        task = await _get(runtime, key, task_id)
        view = task_public(task, storage=runtime.storage, settings=runtime.settings)
        snapshot = (view.status, view.progress.fraction, view.progress.stage)
        if snapshot != last:
            last, sent_at, number = snapshot, time.monotonic(), number + 1
            kind = "done" if task.state.terminal else "progress"
            yield f"id: {number}\nevent: {kind}\ndata: {json.dumps(view.model_dump(mode='json'))}\n\n"
        elif time.monotonic() - sent_at > KEEPALIVE_S:
            sent_at = time.monotonic()
            yield ": keep-alive\n\n"  # a comment line keeps proxies from closing an idle stream
        if task.state.terminal:
            return
        await asyncio.sleep(POLL_S)
