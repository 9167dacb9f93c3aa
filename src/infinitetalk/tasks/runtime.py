"""Everything a process runs, wired together.

``Runtime``: an API server (store, storage, lifecycle, webhooks, sweep, reaper) with its render threads on
one machine, or, when a broker URL is set, without an engine, handing tasks to the queue. ``WorkerRuntime``:
a worker process of a fleet, one per GPU: the engine loaded once, one task at a time from the queue.
"""

from __future__ import annotations

import logging
import signal
import threading

import dramatiq
from sqlalchemy import Engine, event

from infinitetalk.config import Settings
from infinitetalk.engines.base import CancelToken, Engine
from infinitetalk.storage import open_storage
from infinitetalk.storage.base import check_reachable
from infinitetalk.storage.retention import Sweeper, remove_dead_render_scratch, remove_orphan_partials
from infinitetalk.tasks.db import at_head, make_engine, open_database, session_factory
from infinitetalk.tasks.fleet import WorkerRegistration, live_workers
from infinitetalk.tasks.keys import KeyCache
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.metrics import Metrics, PartWatch
from infinitetalk.tasks.outbox import Outbox
from infinitetalk.tasks.reaper import Reaper
from infinitetalk.tasks.service import TaskService
from infinitetalk.tasks.startup import redacted
from infinitetalk.tasks.watch import TaskWatch
from infinitetalk.tasks.uploads import Uploads
from infinitetalk.workers.broker import QUEUE, DramatiqDispatcher, TaskQueue
from infinitetalk.workers.dispatcher import InProcessDispatcher
from infinitetalk.engines import load_engine
from infinitetalk.workers.runner import Job, TaskRunner
from infinitetalk.workers.webhooks import WebhookSender

log = logging.getLogger("infinitetalk.tasks")


class Runtime:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.db, self.sessions = open_database(settings)
        self.reads = _read_engine(self.db, settings)  # status polls, lists and key checks
        self.storage = open_storage(settings)
        self.fleet = bool(settings.broker_url)
        # a fleet: no engine, no weights here; worker processes elsewhere take tasks from this queue
        self.queue = TaskQueue(settings.broker_url, task_timeout_s=settings.task_timeout_s) if self.fleet else None
        #: what /readyz and /metrics learned of the database, the broker and the bucket (logged once per change)
        self.parts = PartWatch()
        self.metrics = Metrics(self.sessions, broker_depth=self.queue.depth if self.queue else None,
                               parts=self.parts, local_workers=0 if self.fleet else settings.workers)
        self.outbox = Outbox(self.sessions, settings)
        self.sender = WebhookSender(self.outbox, settings)
        self.watch = TaskWatch(self.sessions, settings)  # what SSE and `Prefer: wait` clients wait on
        self.lifecycle = TaskLifecycle(sessions=self.sessions, storage=self.storage, settings=settings,
                                       metrics=self.metrics, wake_sender=self.sender.wake,
                                       on_change=self.watch.changed)
        self.dispatcher: InProcessDispatcher | DramatiqDispatcher
        self.engine: Engine | None = None
        if self.queue is not None:
            self.dispatcher = DramatiqDispatcher(self.queue)
        else:
            self.engine = engine or load_engine(settings)
            runner = TaskRunner(engine=self.engine, settings=settings, events=self.lifecycle)
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


def _read_engine(db: Engine, settings: Settings) -> Engine:
    """Where status polls, lists and key checks read. SQLite: a read-only pool of their own. A writer queued on
    SQLite's write lock holds a connection of the shared pool for as long as it waits (busy_timeout), so fifteen
    of them (QueuePool: 5 + 10 overflow) left every poll waiting for a connection until they gave up, though a
    WAL reader itself never waits for a writer. PostgreSQL's writers wait on rows, not on one lock: one pool."""
    if db.dialect.name != "sqlite" or db.url.database in (None, "", ":memory:"):  # a memory database is per pool
        return db
    reads = make_engine(db.url.render_as_string(hide_password=False), busy_timeout_s=settings.database_busy_timeout_s)
    event.listen(reads, "connect", _query_only)
    return reads


def _query_only(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
    # a write slipped into a read path would queue on the lock again; this way it fails at once, in tests
    dbapi_connection.execute("PRAGMA query_only=ON")


class _Registered:
    """The lifecycle's JobEvents, plus: a task this worker claimed shows on its row (a message for a task
    someone else holds is dropped without ever showing there)."""

    def __init__(self, events: TaskLifecycle, registration: WorkerRegistration) -> None:
        self._events, self._registration = events, registration

    def start(self, task_id: str) -> Job | None:
        job = self._events.start(task_id)
        if job is not None:
            self._registration.working_on(task_id)
        return job

    def __getattr__(self, name: str) -> object:
        return getattr(self._events, name)


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
                                       worker_id=self.registration.id)
        self.runner = TaskRunner(engine=self.engine, settings=settings,
                                 events=_Registered(self.lifecycle, self.registration))
        self.queue = TaskQueue(settings.broker_url, task_timeout_s=settings.task_timeout_s, run=self._run)
        self._current: CancelToken | None = None
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
            self.registration.working_on(None)
        if getattr(token, "stopping", False):
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
                getattr(current, "stop", current.cancel)()
            worker.stop(timeout=int(self.settings.task_timeout_s * 1000))
            self.registration.stop()
            self.queue.close()
            self.db.dispose()
