"""Dispatch: hand a task id to something that will run it.

``InProcessDispatcher`` is a thread pool in the API process (the default on one machine). A broker-backed
dispatcher (workers on other machines, ``runtime.broker``) implements the same protocol, ``tasks.ports.Dispatcher``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from infinitetalk.engines.base import CancelToken

log = logging.getLogger(__name__)


class InProcessDispatcher:
    """Runs ``run(task_id, token)`` on ``workers`` threads, in submission order."""

    def __init__(self, run: Callable[[str, CancelToken], None], *, workers: int, token: Callable[[], CancelToken]):
        self._run, self._new_token = run, token
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="task-worker")
        self._tokens: dict[str, CancelToken] = {}
        self._lock = threading.Lock()

    def submit(self, task_id: str) -> None:
        self._pool.submit(self._guarded, task_id)

    def cancel(self, task_id: str) -> bool:
        with self._lock:
            token = self._tokens.get(task_id)
        if token is None:
            return False
        token.cancel()
        return True

    def shutdown(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                # a token that can tell "stopping" from "canceled" lets the runner requeue the task
                getattr(token, "stop", token.cancel)()
        self._pool.shutdown(wait=False, cancel_futures=True)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._tokens)

    def running(self) -> frozenset[str]:
        """Ids of the tasks this process's threads are running now."""
        with self._lock:
            return frozenset(self._tokens)

    def _guarded(self, task_id: str) -> None:
        token = self._new_token()
        with self._lock:
            self._tokens[task_id] = token
        try:
            self._run(task_id, token)
        except Exception:  # the runner reports its own failures; this is the last line so a thread never dies
            log.exception("task %s: worker crashed", task_id)
        finally:
            with self._lock:
                self._tokens.pop(task_id, None)
