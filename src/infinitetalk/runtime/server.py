"""What an API server runs, wired together (a fleet's worker process is ``runtime.worker``).

``Runtime``: the store, storage, lifecycle, webhook sender, sweep and reaper, with its render threads on one
machine, or, when a broker URL is set, without an engine, handing tasks to the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial

from sqlalchemy import event
from sqlalchemy.engine import Engine as Database

from infinitetalk.config import Settings
from infinitetalk.engines import load_engine
from infinitetalk.engines.base import Engine
from infinitetalk.runtime.broker import DramatiqDispatcher, TaskQueue
from infinitetalk.runtime.dispatcher import InProcessDispatcher
from infinitetalk.runtime.fleet import live_workers
from infinitetalk.runtime.metrics import Metrics, PartWatch
from infinitetalk.runtime.reaper import Reaper
from infinitetalk.runtime.runner import TaskRunner
from infinitetalk.runtime.startup import redacted
from infinitetalk.runtime.task_files import TaskFiles, finished
from infinitetalk.runtime.watch import TaskWatch
from infinitetalk.runtime.webhooks import WebhookSender
from infinitetalk.storage import open_storage
from infinitetalk.storage.base import check_reachable
from infinitetalk.storage.retention import Sweeper, remove_dead_render_scratch, remove_orphan_partials
from infinitetalk.tasks.db import at_head, make_database, open_database, session_factory
from infinitetalk.tasks.keys import KeyCache
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.outbox import Outbox, WebhookFormat
from infinitetalk.tasks.safety import load_checker
from infinitetalk.tasks.service import TaskService
from infinitetalk.tasks.uploads import Uploads

log = logging.getLogger("infinitetalk.tasks")


class Runtime:
    def __init__(self, settings: Settings, *, engine: Engine | None = None,
                 webhook_formats: Mapping[str, WebhookFormat] | None = None) -> None:
        self.settings = settings
        self.db, self.sessions = open_database(settings)
        self.reads = _read_database(self.db, settings)  # status polls, lists and key checks
        self.storage = open_storage(settings)
        self.fleet = bool(settings.broker_url)
        # a fleet: no engine, no weights here; worker processes elsewhere take tasks from this queue
        self.queue = TaskQueue(settings.broker_url, task_timeout_s=settings.task_timeout_s) if self.fleet else None
        #: what /readyz and /metrics learned of the database, the broker and the bucket (logged once per change)
        self.parts = PartWatch()
        self.metrics = Metrics(self.sessions, broker_depth=self.queue.depth if self.queue else None,
                               parts=self.parts, local_workers=0 if self.fleet else settings.workers)
        self.outbox = Outbox(self.sessions, settings, formats=webhook_formats)
        self.sender = WebhookSender(self.outbox, settings)
        self.watch = TaskWatch(self.sessions, settings)  # what SSE and `Prefer: wait` clients wait on
        self.lifecycle = TaskLifecycle(sessions=self.sessions, storage=self.storage, settings=settings,
                                       metrics=self.metrics, wake_sender=self.sender.wake,
                                       on_change=self.watch.changed, finished=partial(finished, self.storage))
        self.dispatcher: InProcessDispatcher | DramatiqDispatcher
        self.engine: Engine | None = None
        if self.queue is not None:
            self.dispatcher = DramatiqDispatcher(self.queue)
        else:
            self.engine = engine or load_engine(settings)
            files = TaskFiles(self.lifecycle, self.storage, load_checker(settings.safety_checker))
            runner = TaskRunner(engine=self.engine, settings=settings, events=files)
            self.dispatcher = InProcessDispatcher(runner.run, workers=settings.workers, token=runner.new_token)
        self.engine_name = self.engine.name if self.engine else "workers"
        self.uploads = Uploads(sessions=self.sessions, storage=self.storage, settings=settings)
        self.keys = KeyCache(session_factory(self.reads), ttl_s=settings.key_cache_s)
        self.service = TaskService(sessions=self.sessions, storage=self.storage, uploads=self.uploads, settings=settings,
                                   lifecycle=self.lifecycle, dispatcher=self.dispatcher, metrics=self.metrics,
                                   reads=self.reads)
        self.sweeper = Sweeper(self.storage, settings, also=self.uploads.forget_expired)
        self.reaper = Reaper(self.lifecycle, self.dispatcher, settings,
                             queue_depth=self.queue.depth if self.queue is not None else None)

    def start(self) -> None:
        remove_dead_render_scratch()
        self.sender.start()
        self.sweeper.start()
        self.reaper.start()
        if self.fleet:
            # running tasks belong to live workers elsewhere (the reaper looks after dead ones), and queued
            # ones already have their messages in the broker
            log.info("task service ready: tasks go to the queue at %s", redacted(self.settings.broker_url))
            if not self.settings.storage_url:
                log.warning("no INFINITETALK_STORAGE_URL: workers must share this data folder (%s), so they can only "
                            "run on this machine; set s3://bucket/prefix for workers elsewhere",
                            self.settings.data_dir.resolve())
            return
        remove_orphan_partials(self.storage)  # before our own workers start writing any
        queued = self.lifecycle.recover()
        for task_id in queued:
            self.dispatcher.submit(task_id)
        log.info("task service ready: engine %s, %d worker(s), %d task(s) queued from before",
                 self.engine_name, self.settings.workers, len(queued))

    def not_ready(self) -> str | None:
        """The part that keeps this process from serving, in a word ("database", "broker", "bucket"), or None."""
        if not self.parts.probe("database", self._schema_current)[0]:
            return "database"
        if self.queue is not None and not self.parts.probe("broker", self.queue.depth)[0]:
            return "broker"
        if not self.parts.probe("bucket", lambda: check_reachable(self.storage))[0]:
            return "bucket"
        return None

    def workers_alive(self) -> int | None:
        """Workers that can take a task now: this process's render threads, or a fleet's worker processes with a
        fresh heartbeat; None when the store does not answer."""
        if not self.fleet:
            return self.settings.workers
        return self.parts.probe("database", self._count_fleet)[1]

    def _count_fleet(self) -> int:
        with session_factory(self.reads)() as session:
            return len(live_workers(session))

    def _schema_current(self) -> None:
        if not at_head(self.db):
            raise RuntimeError("the schema is not the newest revision; restarting this server migrates it")

    def stop(self) -> None:
        self.dispatcher.shutdown()
        self.sender.stop()
        self.sweeper.stop()
        self.reaper.stop()
        self.db.dispose()
        self.reads.dispose()


def _read_database(db: Database, settings: Settings) -> Database:
    """Where status polls, lists and key checks read. SQLite: a read-only pool of their own. A writer queued on
    SQLite's write lock holds a connection of the shared pool for as long as it waits (busy_timeout), so fifteen
    of them (QueuePool: 5 + 10 overflow) left every poll waiting for a connection until they gave up, though a
    WAL reader itself never waits for a writer. PostgreSQL's writers wait on rows, not on one lock: one pool."""
    if db.dialect.name != "sqlite" or db.url.database in (None, "", ":memory:"):  # a memory database is per pool
        return db
    reads = make_database(db.url.render_as_string(hide_password=False), busy_timeout_s=settings.database_busy_timeout_s)
    event.listen(reads, "connect", _query_only)
    return reads


def _query_only(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
    # a write slipped into a read path would queue on the lock again; this way it fails at once, in tests
    dbapi_connection.execute("PRAGMA query_only=ON")
