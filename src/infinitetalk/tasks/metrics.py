"""Prometheus metrics of the task service, in a registry of its own (one per app, so tests can make many)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.fleet import live_workers
from infinitetalk.tasks.models import Task, utcnow

_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _QueueCollector(Collector):
    """Queue depth, running tasks, the oldest wait and the fleet's workers, counted from the store (and the
    broker) at scrape time, so every API process reports the same, true across restarts."""

    def __init__(self, sessions: SessionFactory, broker_depth: Callable[[], int] | None) -> None:
        self._sessions, self._broker_depth = sessions, broker_depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._sessions() as session:
            counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
            oldest = session.scalar(select(func.min(Task.created_at)).where(Task.status == "queued"))
            workers = live_workers(session)
        yield GaugeMetricFamily("infinitetalk_tasks_queued", "Tasks waiting for a worker.", value=counts.get("queued", 0))
        yield GaugeMetricFamily("infinitetalk_tasks_running", "Tasks being rendered.", value=counts.get("running", 0))
        wait = (utcnow() - oldest).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily("infinitetalk_queue_wait_seconds", "How long the oldest queued task has waited.",
                                value=max(wait, 0.0))
        yield GaugeMetricFamily("infinitetalk_workers_alive", "Worker processes with a fresh heartbeat (a fleet).",
                                value=len(workers))
        yield GaugeMetricFamily("infinitetalk_workers_busy", "Live worker processes running a task.",
                                value=sum(1 for worker in workers if worker.task_id))
        if self._broker_depth is not None:
            yield GaugeMetricFamily("infinitetalk_broker_queue_depth", "Messages waiting in the broker's queue.",
                                    value=self._broker_depth())


class Metrics:
    def __init__(self, sessions: SessionFactory, *, broker_depth: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_QueueCollector(sessions, broker_depth))
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
