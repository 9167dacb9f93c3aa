"""The reaper: every task reaches a terminal state without a restart. A running task whose heartbeat
stopped (its worker died, or could not record how the task ended) is queued again and dispatched, or
failed and refunded after its last attempt (TaskLifecycle.reap_stale does the state change)."""

from __future__ import annotations

import logging
import threading

from infinitetalk.config import Settings
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.workers.dispatcher import InProcessDispatcher

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, lifecycle: TaskLifecycle, dispatcher: InProcessDispatcher, settings: Settings) -> None:
        self._lifecycle, self._dispatcher, self._settings = lifecycle, dispatcher, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="task-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def reap(self) -> list[str]:
        requeued = self._lifecycle.reap_stale(alive=self._dispatcher.running())
        for task_id in requeued:
            self._dispatcher.submit(task_id)
        return requeued

    def _loop(self) -> None:
        while not self._stop.wait(self._settings.reap_interval_s):
            try:
                self.reap()
            except Exception:  # a store that is down now may be back at the next round
                log.exception("reaper round failed")
