"""Prometheus metrics of the task service, in a registry of its own (one per app, so tests can make many)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from infinitetalk.runtime.fleet import live_workers
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import Task, utcnow

log = logging.getLogger("infinitetalk.health")

_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

T = TypeVar("T")


class PartWatch:
    """Whether each part this process leans on (the database, the broker) answered its last probe.

    Probes come from anyone who asks (/readyz, /metrics: unauthenticated callers, every few seconds), so what
    went wrong (addresses, drivers, the error's text) goes to the log, once per change of state, and callers
    learn only which part is down."""

    def __init__(self) -> None:
        self._down: dict[str, bool] = {}
        self._lock = threading.Lock()

    def probe(self, part: str, read: Callable[[], T]) -> tuple[bool, T | None]:
        """(True, ``read()``), or (False, None) when it raised."""
        try:
            value = read()
        except Exception as exc:  # whatever the driver raises: the part is down, the details are for the log
            self._note(part, exc)
            return False, None
        self._note(part, None)
        return True, value

    def _note(self, part: str, error: Exception | None) -> None:
        with self._lock:
            was_down, self._down[part] = self._down.get(part, False), error is not None
        if error is not None and not was_down:
            log.warning("health: the %s is not answering: %s: %s", part, type(error).__name__, error)
        elif error is None and was_down:
            log.warning("health: the %s answers again", part)


class _QueueCollector(Collector):
    """Queue depth, running tasks, the oldest wait and the fleet's workers, counted from the store (and the
    broker) at scrape time, so every API process reports the same, true across restarts. A part that does not
    answer shows as ``infinitetalk_up{part=...} 0`` and its gauges are left out (not made up), so a scrape still
    answers, with what it could read, exactly when an operator needs it."""

    def __init__(self, sessions: SessionFactory, broker_depth: Callable[[], int] | None, parts: PartWatch,
                 local_workers: int) -> None:
        self._sessions, self._broker_depth, self._parts = sessions, broker_depth, parts
        self._local_workers = local_workers

    def _read_store(self) -> tuple[dict, object, list]:
        with self._sessions() as session:
            counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
            oldest = session.scalar(select(func.min(Task.created_at)).where(Task.status == "queued"))
            return counts, oldest, live_workers(session)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("infinitetalk_up", "Whether a part this process needs answered this scrape (1) or "
                               "not (0); the server log says why.", labels=["part"])
        store_ok, store = self._parts.probe("database", self._read_store)
        up.add_metric(["database"], float(store_ok))
        broker_ok, depth = (self._parts.probe("broker", self._broker_depth) if self._broker_depth is not None
                            else (False, None))
        if self._broker_depth is not None:
            up.add_metric(["broker"], float(broker_ok))
        yield up
        if store is not None:
            counts, oldest, workers = store
            yield GaugeMetricFamily("infinitetalk_tasks_queued", "Tasks waiting for a worker.",
                                    value=counts.get("queued", 0))
            yield GaugeMetricFamily("infinitetalk_tasks_running", "Tasks being rendered.",
                                    value=counts.get("running", 0))
            wait = (utcnow() - oldest).total_seconds() if oldest else 0.0
            yield GaugeMetricFamily("infinitetalk_queue_wait_seconds", "How long the oldest queued task has waited.",
                                    value=max(wait, 0.0))
            # a single server's render threads have no heartbeat rows: they live as long as this process, and
            # every running task is one of theirs
            local_busy = min(self._local_workers, counts.get("running", 0))
            yield GaugeMetricFamily("infinitetalk_workers_alive", "Workers that can take a task: this server's "
                                    "render threads, or a fleet's processes with a fresh heartbeat.",
                                    value=len(workers) + self._local_workers)
            yield GaugeMetricFamily("infinitetalk_workers_busy", "Live workers running a task.",
                                    value=sum(1 for worker in workers if worker.task_id) + local_busy)
        if broker_ok:
            yield GaugeMetricFamily("infinitetalk_broker_queue_depth", "Messages waiting in the broker's queue.",
                                    value=depth)


class Metrics:
    def __init__(self, sessions: SessionFactory, *, broker_depth: Callable[[], int] | None = None,
                 parts: PartWatch | None = None, local_workers: int = 0) -> None:
        """``local_workers``: render threads in this process (a single server), counted as live workers."""
        self.registry = CollectorRegistry()
        self.registry.register(_QueueCollector(sessions, broker_depth, parts or PartWatch(), local_workers))
        self.submitted = Counter("infinitetalk_tasks_submitted", "Tasks accepted.", registry=self.registry)
        self.ended = Counter("infinitetalk_tasks_finished", "Tasks that ended, by status.", ["status"],
                             registry=self.registry)
        self.failures = Counter("infinitetalk_task_failures", "Failed tasks, by failure code.", ["code"],
                                registry=self.registry)
        self.queue_delay = Histogram("infinitetalk_task_queue_delay_seconds", "Time from submit to start.",
                                     buckets=_SECONDS, registry=self.registry)
        self.execution = Histogram("infinitetalk_task_execution_seconds", "Time from start to end.",
                                   buckets=_SECONDS, registry=self.registry)

    def accepted(self) -> None:
        self.submitted.inc()

    def started(self, queue_delay_s: float) -> None:
        self.queue_delay.observe(max(queue_delay_s, 0.0))

    def finished(self, status: str, code: str | None, execution_s: float | None) -> None:
        self.ended.labels(status=status).inc()
        if code:
            self.failures.labels(code=code).inc()
        if execution_s is not None:
            self.execution.observe(max(execution_s, 0.0))
