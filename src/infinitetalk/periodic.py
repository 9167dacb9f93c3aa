"""Work done every few seconds on a thread of its own, until stopped: the reaper, the retention sweep, a worker's
row heartbeat, a running task's heartbeat. One loop for all of them, at the bottom of the package (storage and
runtime both use it).

A round that raises is logged and the next one runs on time: these loops talk to a database or a bucket that may
be down for a moment, and a loop that died on one error would stop for the rest of the process (a task heartbeat
that stopped makes a live task look dead to the reaper).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

log = logging.getLogger(__name__)


class Periodic:
    """``work()`` every ``interval_s`` on a daemon thread named ``name``, from ``start()`` to ``stop()``.

    ``at_start``: the first round runs at once instead of one interval in. Usable as a context manager: it
    starts on entry and stops (waiting for a round under way) on exit.
    """

    def __init__(self, name: str, interval_s: float, work: Callable[[], object], *, at_start: bool = False) -> None:
        self.name, self.interval_s = name, interval_s
        self._work, self._at_start = work, at_start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, *, wait: bool = True) -> None:
        """No round starts after this. ``wait``: return once a round under way has ended (never from a round
        itself)."""
        self._stop.set()
        if wait and self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        if self._at_start and not self._stop.is_set():
            self._round()
        while not self._stop.wait(self.interval_s):
            self._round()

    def _round(self) -> None:
        try:
            self._work()
        except Exception:  # the next round tries again (see the module's docstring)
            log.exception("%s: a round failed; the next one runs in %g s", self.name, self.interval_s)
