"""The reaper: every task reaches a terminal state without a restart. A running task whose heartbeat
stopped (its worker died, or could not record how the task ended) is queued again and dispatched, or
failed and refunded after its last attempt (TaskLifecycle.reap_stale does the state change).

With a broker, it also sends again the queued tasks whose message is gone (the broker was down when they
were submitted, or lost its data): when the broker's queue is empty but tasks have waited longer than
``redispatch_after_s``, nothing else will ever run them. A duplicate message is harmless: a worker claims a
task with a conditional UPDATE, so the second message finds it taken and is dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable

from infinitetalk.config import Settings
from infinitetalk.periodic import Periodic
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.ports import Dispatcher

log = logging.getLogger(__name__)


class Reaper:
    def __init__(self, lifecycle: TaskLifecycle, dispatcher: Dispatcher, settings: Settings, *,
                 queue_depth: Callable[[], int] | None = None) -> None:
        self._lifecycle, self._dispatcher, self._settings = lifecycle, dispatcher, settings
        self._queue_depth = queue_depth
        self._rounds = Periodic("task-reaper", settings.reap_interval_s, self.reap)

    def start(self) -> None:
        self._rounds.start()

    def stop(self) -> None:
        self._rounds.stop(wait=False)

    def reap(self) -> list[str]:
        requeued = self._lifecycle.reap_stale(alive=self._dispatcher.running())
        for task_id in requeued:
            self._dispatcher.submit(task_id)
        if self._queue_depth is not None and self._queue_depth() == 0:
            for task_id in self._lifecycle.waiting_since(self._settings.redispatch_after_s):
                log.info("task %s sent to the queue again (queued, but the queue is empty)", task_id)
                self._dispatcher.submit(task_id)
        return requeued
