"""A worker process of a fleet, one per GPU: the engine loaded once, one task at a time from the queue, its
row in the store kept alive by a heartbeat (``runtime.fleet``), and a clean stop on SIGTERM (the task it runs goes
back to the queue for another worker)."""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial

import dramatiq

from infinitetalk.config import Settings
from infinitetalk.engines import load_engine
from infinitetalk.engines.base import Engine
from infinitetalk.runtime.broker import QUEUE, TaskQueue
from infinitetalk.runtime.fleet import WorkerRegistration
from infinitetalk.runtime.metrics import Metrics
from infinitetalk.runtime.runner import TaskRunner
from infinitetalk.runtime.task_files import TaskFiles, finished
from infinitetalk.runtime.tokens import DeadlineToken, Ending
from infinitetalk.storage import open_storage
from infinitetalk.storage.retention import remove_dead_render_scratch
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.safety import load_checker

log = logging.getLogger("infinitetalk.tasks")


class WorkerRuntime:
    """A worker process: runs tasks from the queue on its engine, one at a time, until SIGTERM."""

    def __init__(self, settings: Settings, *, gpu: str | None = None, engine: Engine | None = None) -> None:
        if not settings.broker_url:
            raise ValueError("a worker needs a broker: set INFINITETALK_BROKER_URL (redis://...)")
        self.settings = settings
        self.db, self.sessions = open_database(settings)
        self.storage = open_storage(settings)
        self.engine = engine or load_engine(settings)
        self.registration = WorkerRegistration(self.sessions, gpu=gpu, engine=self.engine.name)
        self.lifecycle = TaskLifecycle(sessions=self.sessions, storage=self.storage, settings=settings,
                                       metrics=Metrics(self.sessions), wake_sender=lambda: None,
                                       finished=partial(finished, self.storage), worker_id=self.registration.id)
        files = TaskFiles(self.lifecycle, self.storage, load_checker(settings.safety_checker))
        self.runner = TaskRunner(engine=self.engine, settings=settings, events=files)
        self.queue = TaskQueue(settings.broker_url, task_timeout_s=settings.task_timeout_s, run=self._run)
        self._current: DeadlineToken | None = None
        self._stopping = threading.Event()

    def _run(self, task_id: str) -> None:
        if self._stopping.is_set():  # taken from the queue as we stop: leave it for another worker
            self.queue.send(task_id)
            return
        token = self.runner.new_token()
        self._current = token
        try:
            self.runner.run(task_id, token)
        finally:
            self._current = None
        if token.ended is Ending.STOPPING:
            self.queue.send(task_id)  # the runner put it back in the store; now another worker may take it

    def serve(self) -> None:
        """Take tasks until SIGTERM or SIGINT; then stop the current task at its next step, queue it again
        for another worker, and exit."""
        # worker_timeout caps the consumer's back-off while the queue is empty: 1 s by default, which a task
        # submitted to an idle fleet would wait on top of everything else
        worker = dramatiq.Worker(self.queue.broker, queues={QUEUE}, worker_threads=1, worker_timeout=100)
        worker.queue_prefetch = 1  # hold no task while another one runs here: a free GPU elsewhere takes it
        # the handlers first: this process's row is already live, and a stop that killed it here would leave
        # the row looking alive until its heartbeat aged out
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopping.set())
        remove_dead_render_scratch()  # a killed worker's, before this one renders
        worker.start()
        log.info("worker %s ready: engine %s", self.registration.id, self.engine.name)
        try:
            self._stopping.wait()
        finally:
            log.info("worker %s stopping", self.registration.id)
            current = self._current
            if current is not None:
                current.stop()
            worker.stop(timeout=int(self.settings.task_timeout_s * 1000))
            self.registration.stop()
            self.queue.close()
            self.db.dispose()
