"""Everything a server process runs, wired together: store, storage, lifecycle, workers, webhooks, sweep."""

from __future__ import annotations

import logging

from infinitetalk.config import Settings
from infinitetalk.engines.base import Engine
from infinitetalk.storage import LocalStorage
from infinitetalk.storage.retention import Sweeper, remove_orphan_partials
from infinitetalk.tasks.db import at_head, open_database
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.metrics import Metrics
from infinitetalk.tasks.outbox import Outbox
from infinitetalk.tasks.reaper import Reaper
from infinitetalk.tasks.service import TaskService
from infinitetalk.tasks.watch import TaskWatch
from infinitetalk.tasks.uploads import Uploads
from infinitetalk.workers.dispatcher import InProcessDispatcher
from infinitetalk.engines import load_engine
from infinitetalk.workers.runner import TaskRunner
from infinitetalk.workers.webhooks import WebhookSender

log = logging.getLogger("infinitetalk.tasks")


class Runtime:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.db, self.sessions = open_database(settings)
        self.storage = LocalStorage(settings)
        self.metrics = Metrics(self.sessions)
        self.outbox = Outbox(self.sessions, settings)
        self.sender = WebhookSender(self.outbox, settings)
        self.watch = TaskWatch(self.sessions, settings)  # what SSE and `Prefer: wait` clients wait on
        self.lifecycle = TaskLifecycle(sessions=self.sessions, storage=self.storage, settings=settings,
                                       metrics=self.metrics, wake_sender=self.sender.wake,
                                       on_change=self.watch.changed)
        self.engine = engine or load_engine(settings)
        self.runner = TaskRunner(engine=self.engine, settings=settings, events=self.lifecycle)
        self.dispatcher = InProcessDispatcher(self.runner.run, workers=settings.workers, token=self.runner.new_token)
        self.uploads = Uploads(sessions=self.sessions, storage=self.storage, settings=settings)
        self.service = TaskService(sessions=self.sessions, storage=self.storage, uploads=self.uploads, settings=settings,
                                   lifecycle=self.lifecycle, dispatcher=self.dispatcher, metrics=self.metrics)
        self.sweeper = Sweeper(self.storage, settings, also=self.uploads.forget_expired)
        self.reaper = Reaper(self.lifecycle, self.dispatcher, settings)

    def start(self) -> None:
        remove_orphan_partials(self.storage)  # before our own workers start writing any
        self.sender.start()
        self.sweeper.start()
        self.reaper.start()
        queued = self.lifecycle.recover()
        for task_id in queued:
            self.dispatcher.submit(task_id)
        log.info("task service ready: engine %s, %d worker(s), %d task(s) queued from before",
                 self.engine.name, self.settings.workers, len(queued))

    def ready(self) -> bool:
        return at_head(self.db)

    def stop(self) -> None:
        self.dispatcher.shutdown()
        self.sender.stop()
        self.sweeper.stop()
        self.reaper.stop()
        self.db.dispose()
