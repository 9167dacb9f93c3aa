"""Dispatch through Dramatiq on Redis: API processes send a task id, worker processes (one per GPU) run it.

The queue is at least once; the effects are exactly once because a worker claims a task with one
conditional UPDATE (queued -> running) before running it, so a redelivered message for a task that is
running, or already ended, is dropped. What Dramatiq's defaults would get wrong for long renders is set
here: no retries (a failed render is recorded as failed by the runner; a message is only delivered again
when its worker died), a time limit above the task timeout (the runner's own deadline ends the task and
records why), and one message prefetched per worker thread, so a task waits for the first free GPU
rather than behind a busy one. There is no abort: cancel is the database flag the runner polls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

QUEUE = "infinitetalk-tasks"
ACTOR = "run_task"
#: A dead worker's unacknowledged messages go back to the queue after this long without its heartbeat.
BROKER_HEARTBEAT_MS = 30_000
#: ``stub://NAME``: Dramatiq's in-memory StubBroker instead of Redis, one per NAME, shared by every TaskQueue of
#: the process with that URL, so an API side and a worker run the fleet's code path in one process (the fast
#: tests). Nothing leaves the process: never a fleet's setting.
STUB_SCHEME = "stub://"
_STUB_BROKERS: dict[str, StubBroker] = {}


def _not_here(task_id: str) -> None:
    raise RuntimeError(f"task {task_id} reached a process that only sends tasks")


class TaskQueue:
    """The broker and the one actor. API processes only ``send``; a worker passes ``run``."""

    def __init__(self, url: str, *, task_timeout_s: float, run: Callable[[str], None] | None = None) -> None:
        self.broker: RedisBroker | StubBroker
        if url.startswith(STUB_SCHEME):
            self.broker = _STUB_BROKERS.setdefault(url, StubBroker())
        else:
            self.broker = RedisBroker(url=url, heartbeat_timeout=BROKER_HEARTBEAT_MS, namespace="infinitetalk")
        if ACTOR in self.broker.actors:  # a stub broker that another TaskQueue of this process declared it on
            if run is None:  # sending needs no actor of our own: the worker's stays the one that runs them
                self.actor = self.broker.get_actor(ACTOR)
                return
            del self.broker.actors[ACTOR]  # an API side's, which only sends: the worker's runs what comes
        self.actor = dramatiq.actor(
            run or _not_here, broker=self.broker, actor_name=ACTOR, queue_name=QUEUE,
            max_retries=0, time_limit=int((task_timeout_s + 300) * 1000),
        )

    def send(self, task_id: str) -> None:
        self.actor.send(task_id)

    def depth(self) -> int:
        """Messages waiting in the queue (not yet taken by a worker)."""
        if isinstance(self.broker, StubBroker):
            return self.broker.queues[QUEUE].qsize()
        return int(self.broker.client.llen(f"{self.broker.namespace}:{QUEUE}"))

    def close(self) -> None:
        self.broker.close()


class DramatiqDispatcher:
    """The Dispatcher of an API process in a fleet: tasks go to the queue; workers elsewhere run them."""

    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue

    def submit(self, task_id: str) -> None:
        try:
            self.queue.send(task_id)
        except RedisError as exc:
            # the task is safe in the store as queued; the reaper sends it again once the broker answers
            log.warning("task %s: the broker did not take it (%s); it stays queued and is sent again later",
                        task_id, exc.__class__.__name__)

    def cancel(self, task_id: str) -> bool:
        return False  # the runner on whichever worker holds it sees the database flag at its next heartbeat

    def running(self) -> frozenset[str]:
        return frozenset()  # nothing runs in this process

    def shutdown(self) -> None:
        self.queue.close()
