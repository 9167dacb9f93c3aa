"""Fair shares between API keys of what every caller shares: connections, threads, this process's time.

Per key (open mode's key-less callers count as one key), caps on what a caller holds open at once: event
streams, `Prefer: wait` answers and input URL downloads; a rate for estimates that download URLs. Past one, a
429 with Retry-After. The counts live in this process: each holds something of this process (a connection, a
thread), so a fleet's API servers each protect themselves, and a crash frees everything with the process.

Submits and estimates (downloads, decoding, the store) run on threads of their own (``run_submit``), so a
slow input URL never holds one of the threads that key checks, polls and every other route run on.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from infinitetalk.errors import TooManyRequests
from infinitetalk.media.fetch import FETCH_GUARD
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey

T = TypeVar("T")

#: Retry-After of a refused stream, wait or download: slots free when the caller's own work ends, which we
#: cannot foresee, so a short hint.
SLOT_RETRY_S = 5
WINDOW_S = 60.0


class Shares:
    """How many of one thing each key holds now, at most ``cap`` each. Thread-safe: downloads take theirs on
    submit threads, streams and waits on the event loop. A plain (not async) context manager for that reason;
    its release is in a ``finally``, so an error or a cancelled request frees the slot too."""

    def __init__(self, cap: int, *, code: str, refusal: str) -> None:
        self.cap, self._code, self._refusal = cap, code, refusal
        self._held: dict[str | None, int] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str | None) -> None:
        with self._lock:
            held = self._held.get(key_id, 0)
            if held >= self.cap:
                raise TooManyRequests(self._refusal.format(cap=self.cap), retry_after=SLOT_RETRY_S,
                                      code=self._code)
            self._held[key_id] = held + 1

    def give_back(self, key_id: str | None) -> None:
        with self._lock:
            held = self._held.get(key_id, 0) - 1
            if held > 0:
                self._held[key_id] = held
            else:
                self._held.pop(key_id, None)  # keys that hold nothing cost nothing

    @contextmanager
    def held(self, key_id: str | None) -> Iterator[None]:
        self.take(key_id)
        try:
            yield
        finally:
            self.give_back(key_id)

    def holding(self, key_id: str | None) -> int:
        with self._lock:
            return self._held.get(key_id, 0)


class Window:
    """At most ``limit`` events per key in any ``WINDOW_S`` seconds, counted in memory: what it limits
    (estimates) stores nothing, so there is no row to count, and each server guards its own work."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int, *, refusal: str) -> None:
        self.limit, self._refusal = limit, refusal
        self._times: dict[str | None, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._times) >= self.MAX_KEYS:
                self._forget_idle(now)
            times = self._times.setdefault(key_id, deque())
            while times and times[0] <= now - WINDOW_S:
                times.popleft()
            if len(times) >= self.limit:
                wait = times[0] + WINDOW_S - now
                raise TooManyRequests(self._refusal.format(limit=self.limit, wait=math.ceil(wait)),
                                      retry_after=math.ceil(wait))
            times.append(now)

    def _forget_idle(self, now: float) -> None:
        for key_id in [k for k, times in self._times.items() if not times or times[-1] <= now - WINDOW_S]:
            del self._times[key_id]


class Fairness:
    """One server's shares, estimate rate and submit threads."""

    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.streams = Shares(settings.max_streams_per_key, code="streams_limited", refusal=(
            "this key has {cap} event streams open, the most allowed; close one, or poll GET /v1/tasks/{{id}}"))
        self.waits = Shares(settings.max_waits_per_key, code="waits_limited", refusal=(
            "this key has {cap} requests waiting on tasks (Prefer: wait), the most allowed; wait for one to "
            "answer, or poll without Prefer: wait"))
        self.fetches = Shares(settings.max_fetches_per_key, code="fetches_limited", refusal=(
            "this key has {cap} input downloads under way, the most allowed; wait for one to finish, or send "
            "the files as uploads (POST /v1/uploads)"))
        self.estimates = Window(settings.estimates_per_minute, refusal=(
            "this key may price {limit} inputs from URLs a minute; try again in {wait} s, or estimate from an "
            "upload"))
        self.threads = ThreadPoolExecutor(settings.submit_threads, thread_name_prefix="infinitetalk-submit")


_FAIRNESS: weakref.WeakKeyDictionary[Runtime, Fairness] = weakref.WeakKeyDictionary()


def fairness_of(runtime: Runtime) -> Fairness:
    """The server's shares (one per runtime; made on first use, on the event loop, so never twice)."""
    fairness = _FAIRNESS.get(runtime)
    if fairness is None:
        fairness = _FAIRNESS[runtime] = Fairness(runtime)
    return fairness


def key_id_of(key: ApiKey | None) -> str | None:
    return key.id if key is not None else None


async def run_submit(runtime: Runtime, key: ApiKey | None, work: Callable[[], T], *, estimate: bool = False) -> T:
    """``work`` (a submit or an estimate: it may download the caller's URLs) on the submit threads, each of its
    downloads holding one of the key's download slots; an estimate's first download also counts against
    the key's estimate rate."""
    fairness, key_id = fairness_of(runtime), key_id_of(key)
    counted = not estimate  # an estimate is counted once, however many URLs it downloads

    @contextmanager
    def guard() -> Iterator[None]:
        nonlocal counted
        if not counted:
            fairness.estimates.hit(key_id)
            counted = True
        with fairness.fetches.held(key_id):
            yield

    context = contextvars.copy_context()  # the request's context, as run_in_threadpool would pass it on
    context.run(FETCH_GUARD.set, guard)
    return await asyncio.get_running_loop().run_in_executor(fairness.threads, context.run, work)
