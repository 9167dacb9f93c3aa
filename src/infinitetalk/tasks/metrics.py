"""Prometheus metrics of the task service, in a registry of its own (one per app, so tests can make many)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import Task

_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _QueueCollector(Collector):
    """Queue depth and running tasks, counted from the store at scrape time (true across restarts)."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._sessions() as session:
            counts = dict(session.execute(select(Task.status, func.count()).group_by(Task.status)).all())
        yield GaugeMetricFamily("infinitetalk_tasks_queued", "Tasks waiting for a worker.", value=counts.get("queued", 0))
        yield GaugeMetricFamily("infinitetalk_tasks_running", "Tasks being rendered.", value=counts.get("running", 0))


class Metrics:
    def __init__(self, sessions: SessionFactory) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_QueueCollector(sessions))
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
