"""Dispatch: hand a task id to something that will run it.

``InProcessDispatcher`` is a thread pool in the API process (the default on one machine). A broker-backed
dispatcher (workers on other machines, ``runtime.broker``) implements the same protocol, ``tasks.ports.Dispatcher``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from infinitetalk.engines.base import CancelToken
from infinitetalk.runtime.tokens import DeadlineToken

log = logging.getLogger(__name__)

Token = TypeVar("Token", bound=CancelToken)


class InProcessDispatcher(Generic[Token]):
    """Runs ``run(task_id, token)`` on ``workers`` threads, in submission order, each with a new ``token()``
    (the task runner's: a ``DeadlineToken``)."""

    def __init__(self, run: Callable[[str, Token], None], *, workers: int, token: Callable[[], Token]):
        self._run, self._new_token = run, token
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="task-worker")
        self._tokens: dict[str, Token] = {}
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
                # stopped, not canceled: the runner queues the task again for the next start
                if isinstance(token, DeadlineToken):
                    token.stop()
                else:  # a token that cannot tell the two apart
                    token.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)

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
