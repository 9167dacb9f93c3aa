"""Waiting on a task without holding a thread: `Prefer: wait=N` and server-sent events.

Waiters do not poll: all waiters on one task share its watcher (``tasks.watch``), which reloads the task
when it changes. A wait or a stream held for a client holds one of its key's slots (``api.fairness``) and
ends as soon as the client hangs up (the ASGI `http.disconnect` message, raced against the wait) or its key
is revoked (checked again every ``key_cache_s``): nothing is held for a client that is gone or shut out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Any

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from infinitetalk.api.deps import run_read
from infinitetalk.api.fairness import fairness_of, key_id_of
from infinitetalk.errors import Unauthorized
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, Task
from infinitetalk.tasks.schemas import HLS_PLAYLIST, TaskPublic
from infinitetalk.tasks.views import task_public

log = logging.getLogger("infinitetalk.api")

KEEPALIVE_S = 15.0
#: The key of a held request is checked again every key_cache_s, but not more often than this (key_cache_s
#: may be 0: a store read on every request).
MIN_KEY_RECHECK_S = 0.25
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


def _revoked() -> Unauthorized:
    return Unauthorized("the API key was revoked while this request was open; use a valid key")


def _key_recheck_s(runtime: Runtime) -> float:
    return max(runtime.settings.key_cache_s, MIN_KEY_RECHECK_S)


async def key_still_valid(runtime: Runtime, key: ApiKey | None) -> bool:
    """Whether the key of a request held open may still be used (open mode's key-less callers always may).
    A store that does not answer ends nothing: the next check, a key_cache_s later, tries again."""
    if key is None or runtime.keys.known_valid(key.id):
        return True
    try:
        return await run_read(runtime, partial(runtime.keys.still_valid, key.id))
    except SQLAlchemyError:
        log.warning("could not check key %s of an open stream or wait; checking again shortly", key.id)
        return True


async def _until_gone(receive: Receive) -> None:
    """Returns once the client has hung up (reading, on the way, whatever of the request is still unread)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _until_revoked(runtime: Runtime, key: ApiKey) -> None:
    every = _key_recheck_s(runtime)
    while await key_still_valid(runtime, key):
        await asyncio.sleep(every)


async def _race(*jobs: Coroutine[Any, Any, Any]) -> list[asyncio.Task]:
    """Run ``jobs`` until the first one ends; the others are cancelled (and awaited). Returns their tasks."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return tasks


def _ended(task: asyncio.Task) -> bool:
    return task.done() and not task.cancelled()


async def wait_while_connected(request: Request, runtime: Runtime, key: ApiKey | None, task_id: str,
                               seconds: float) -> Task:
    """``wait_for_end`` for a client on the line: ClientDisconnect as soon as it hangs up (nobody reads the
    answer, and the wait ends with it), Unauthorized when its key is revoked meanwhile. The caller holds the
    key's wait slot around it (``fairness_of(runtime).waits``)."""
    jobs = [wait_for_end(runtime, key, task_id, seconds), _until_gone(request.receive)]
    if key is not None:
        jobs.append(_until_revoked(runtime, key))
    waiting, gone, *revoked = await _race(*jobs)
    if _ended(waiting):
        return waiting.result()
    if _ended(gone):
        gone.result()  # an error of the request's own (its body over the cap) before the hang-up
        raise ClientDisconnect()
    if revoked and _ended(revoked[0]):
        revoked[0].result()
        raise _revoked()
    raise asyncio.CancelledError  # none ended: we were cancelled ourselves


class EventStream(StreamingResponse):
    """Server-sent events that hold one of the key's stream slots until they end, and end as soon as the
    client leaves. Starlette listens for the disconnect itself only under ASGI spec versions before 2.4 (from
    2.4 on it would notice at the next write, up to a keep-alive later), so this always does."""

    def __init__(self, events: AsyncIterator[str], *, release: Callable[[], None]) -> None:
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            streaming, _gone = await _race(self.stream_response(send), _until_gone(receive))
            if _ended(streaming):
                streaming.result()  # the stream's own error, if it had one
        finally:
            try:
                await self.body_iterator.aclose()  # type: ignore[attr-defined]  # its watcher goes now
            finally:
                self._release()


def event_stream(runtime: Runtime, key: ApiKey | None, task_id: str) -> EventStream:
    """The task's events, holding one of the key's stream slots (TooManyRequests past the cap)."""
    streams, key_id = fairness_of(runtime).streams, key_id_of(key)
    streams.take(key_id)
    return EventStream(task_events(runtime, key, task_id), release=partial(streams.give_back, key_id))


async def task_events(runtime: Runtime, key: ApiKey | None, task_id: str) -> AsyncIterator[str]:
    """`progress` events while the task changes, a `segment` event for each new segment of the live preview,
    then one `done` event with the final task. When the key is revoked meanwhile (checked every
    key_cache_s), an `error` event (`unauthorized`) ends the stream instead."""
    recheck_s = _key_recheck_s(runtime) if key is not None else KEEPALIVE_S
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
            keep_alive_at = time.monotonic() + KEEPALIVE_S
            while True:
                update = await watcher.next(version, min(recheck_s, max(keep_alive_at - time.monotonic(), 0.0)))
                if not await key_still_valid(runtime, key):
                    yield f"id: {number + 1}\nevent: error\ndata: {json.dumps({'error': _revoked().to_dict()})}\n\n"
                    return
                if update is not None:
                    break
                if time.monotonic() >= keep_alive_at - 0.01:  # (a timer may fire a hair early)
                    yield ": keep-alive\n\n"  # a comment line keeps proxies from closing an idle stream
                    keep_alive_at = time.monotonic() + KEEPALIVE_S
            version, task = update


def _segments(view: TaskPublic, segments: list, announced: int) -> dict:
    """A `segment` event: the preview playlist's link and the segments new since the last such event."""
    playlist = next((o for o in view.outputs if o.content_type == HLS_PLAYLIST), None)
    return {"playlist": playlist.url if playlist else None, "chunk": view.progress.chunk,
            "chunks": view.progress.chunks, "video_s_done": view.progress.video_s_done,
            "segments": [{"index": announced + i, "name": name, "duration_s": seconds}
                         for i, (name, seconds) in enumerate(segments[announced:])]}
