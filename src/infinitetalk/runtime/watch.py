"""Waiting on a task without a poll per waiter: one watcher per task id, shared by all its waiters.

A watcher reloads its task as soon as this process changes it (the lifecycle calls ``TaskWatch.changed``
from whichever thread made the change) and otherwise every ``watch_poll_s``, which catches the changes
other processes make (API servers in a fleet share one database). Its waiters read the snapshot it
loaded, so 300 event streams on one task cost one query per change instead of 300 polls a second.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from infinitetalk.config import Settings
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import Task

log = logging.getLogger(__name__)


def _fingerprint(task: Task | None) -> tuple | None:
    """What waiters can see change: the state, progress and stage."""
    return None if task is None else (task.status, task.progress, task.stage, task.attempts)


class Watcher:
    """The latest snapshot of one task, and a way to wait for the next one (on one event loop)."""

    def __init__(self, task_id: str, load: Callable[[str], Task | None], poll_s: float,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.task_id, self._load, self._poll_s, self._loop = task_id, load, poll_s, loop
        #: Bumped on every new snapshot; a waiter remembers the one it has seen.
        self.version = 0
        #: None until the first load, and when the task is gone.
        self.task: Task | None = None
        self.waiters = 0
        self._published: asyncio.Future[None] = loop.create_future()
        self._poke = asyncio.Event()
        self._runner = loop.create_task(self._run(), name=f"watch-{task_id}")

    async def next(self, after: int, timeout: float) -> tuple[int, Task | None] | None:
        """The snapshot after version ``after`` (at once if there already is one), or None after ``timeout``."""
        if self.version <= after:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._published)  # shared: one waiter leaving must not cancel it
            except TimeoutError:
                return None
        return self.version, self.task

    def poke(self) -> None:
        """Reload now (from any thread)."""
        try:
            self._loop.call_soon_threadsafe(self._poke.set)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    def close(self) -> None:
        self._runner.cancel()

    async def _run(self) -> None:
        shown: tuple | None = ()  # nothing published yet; differs from any fingerprint, None included
        while True:
            self._poke.clear()  # a change from here on means one more reload
            try:
                task = await asyncio.to_thread(self._load, self.task_id)
            except Exception:  # a database hiccup: the next reload tries again
                log.exception("watching task %s: loading it failed", self.task_id)
            else:
                if _fingerprint(task) != shown:
                    shown = _fingerprint(task)
                    self._publish(task)
                if task is None or task.state.terminal:
                    return  # nothing more will change
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._poke.wait()
            except TimeoutError:
                pass  # the slow poll: changes made by other processes

    def _publish(self, task: Task | None) -> None:
        self.task, self.version = task, self.version + 1
        published, self._published = self._published, self._loop.create_future()
        published.set_result(None)


class TaskWatch:
    """The watchers of one process, by task id (and event loop: each serves the loop its waiters run on)."""

    def __init__(self, sessions: SessionFactory, settings: Settings) -> None:
        self._sessions, self._poll_s = sessions, settings.watch_poll_s
        self._watchers: dict[str, dict[asyncio.AbstractEventLoop, Watcher]] = {}
        self._lock = threading.Lock()  # changed() comes from worker threads

    def changed(self, task_id: str) -> None:
        """The task changed in this process: its watchers (if any) reload now. Thread-safe, never blocks."""
        with self._lock:
            watchers = list(self._watchers.get(task_id, {}).values())
        for watcher in watchers:
            watcher.poke()

    @asynccontextmanager
    async def watching(self, task_id: str) -> AsyncIterator[Watcher]:
        """The shared watcher of ``task_id``, for as long as the caller waits on it."""
        loop = asyncio.get_running_loop()
        with self._lock:
            by_loop = self._watchers.setdefault(task_id, {})
            watcher = by_loop.get(loop)
            if watcher is None:
                watcher = by_loop[loop] = Watcher(task_id, self._load, self._poll_s, loop)
            watcher.waiters += 1
        try:
            yield watcher
        finally:
            with self._lock:
                watcher.waiters -= 1
                if watcher.waiters == 0:
                    del by_loop[loop]
                    if not by_loop:
                        del self._watchers[task_id]
                    watcher.close()

    def _load(self, task_id: str) -> Task | None:
        with self._sessions() as session:
            return session.get(Task, task_id)
