"""Waiting on a task without holding a thread: `Prefer: wait=N` and server-sent events.

Waiters do not poll: all waiters on one task share its watcher (``tasks.watch``), which reloads the task
when it changes.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from infinitetalk.tasks.models import ApiKey, Task
from infinitetalk.tasks.runtime import Runtime
from infinitetalk.tasks.schemas import HLS_PLAYLIST, TaskPublic
from infinitetalk.tasks.views import task_public

KEEPALIVE_S = 15.0
_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+)", re.IGNORECASE)


def prefer_wait(header: str | None, max_wait_s: int) -> int | None:
    """Seconds asked for by an RFC 7240 `Prefer: wait=N` header, capped at ``max_wait_s``."""
    match = _WAIT.search(header or "")
    return min(int(match.group(1)), max_wait_s) if match else None


async def _get(runtime: Runtime, key: ApiKey | None, task_id: str) -> Task:
    return await run_in_threadpool(runtime.service.get, key=key, task_id=task_id)


async def wait_for_end(runtime: Runtime, key: ApiKey | None, task_id: str, seconds: float) -> Task:
    if seconds <= 0:
        return await _get(runtime, key, task_id)
    deadline = time.monotonic() + seconds
    async with runtime.watch.watching(task_id) as watcher:
        # the version first: a change made while we read the task still wakes us
        version = watcher.version
        task = await _get(runtime, key, task_id)  # also the key check: the watcher reads any task
        while not task.state.terminal:
            update = await watcher.next(version, deadline - time.monotonic())
            if update is None or update[1] is None:  # time is up, or the task is gone
                return task
            version, task = update
        return task


async def task_events(runtime: Runtime, key: ApiKey | None, task_id: str) -> AsyncIterator[str]:
    """`progress` events while the task changes, a `segment` event for each new segment of the live preview,
    then one `done` event with the final task."""
    last, number, announced = None, 0, 0
    async with runtime.watch.watching(task_id) as watcher:
        version = watcher.version
        task: Task | None = await _get(runtime, key, task_id)
        while task is not None:
            view = task_public(task, storage=runtime.storage, settings=runtime.settings)
            segments = (task.chunks or {}).get("segments") or []
            if len(segments) > announced:
                number += 1
                yield f"id: {number}\nevent: segment\ndata: {json.dumps(_segments(view, segments, announced))}\n\n"
                announced = len(segments)
            snapshot = (view.status, view.progress.fraction, view.progress.stage)
            if snapshot != last:
                last, number = snapshot, number + 1
                kind = "done" if task.state.terminal else "progress"
                yield f"id: {number}\nevent: {kind}\ndata: {json.dumps(view.model_dump(mode='json'))}\n\n"
            if task.state.terminal:
                return
            update = await watcher.next(version, KEEPALIVE_S)
            while update is None:
                yield ": keep-alive\n\n"  # a comment line keeps proxies from closing an idle stream
                update = await watcher.next(version, KEEPALIVE_S)
            version, task = update


def _segments(view: TaskPublic, segments: list, announced: int) -> dict:
    """A `segment` event: the preview playlist's link and the segments new since the last such event."""
    playlist = next((o for o in view.outputs if o.content_type == HLS_PLAYLIST), None)
    return {"playlist": playlist.url if playlist else None, "chunk": view.progress.chunk,
            "chunks": view.progress.chunks, "video_s_done": view.progress.video_s_done,
            "segments": [{"index": announced + i, "name": name, "duration_s": seconds}
                         for i, (name, seconds) in enumerate(segments[announced:])]}
