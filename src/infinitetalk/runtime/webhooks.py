"""Webhook delivery: Standard Webhooks signatures, at-least-once with exponential backoff and jitter.

Deliveries live in an ``Outbox`` (the task service's table): the sender claims the due ones with a lease
(so a crash mid-send means a retry, never a loss), posts each, and records the attempt and when to try
again. A delivery keeps its id, which is the ``webhook-id`` header, on every retry, so receivers can
drop duplicates.

Deliveries go out concurrently on one event loop, each under its own deadline, so a receiver that hangs
holds one slot for at most ``webhook_timeout_s`` and never the ones queued behind it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from datetime import UTC, datetime
from typing import Protocol

import httpx
from standardwebhooks.webhooks import Webhook

from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError
from infinitetalk.media.fetch import pinned_request
from infinitetalk.tasks.outbox import Attempt, Delivery

log = logging.getLogger(__name__)

POLL_S = 0.25
#: A claimed delivery is invisible to other senders this long (longer than one attempt can take).
LEASE_S = 60.0
#: On stop, deliveries under way get this long to finish before they are cut (and retried after a restart).
STOP_GRACE_S = 2.0


class Outbox(Protocol):
    def claim_due(self, *, limit: int, lease_s: float) -> list[Delivery]: ...

    def record(self, delivery_id: str, attempt: Attempt, *, retry_in_s: float | None) -> None: ...

    def release(self, delivery_ids: list[str]) -> None: ...


def retry_delay(attempts_made: int, schedule: list[float]) -> float | None:
    """Seconds to wait after the ``attempts_made``-th failure, with +-20% jitter; None: give up."""
    if attempts_made > len(schedule):
        return None
    return schedule[attempts_made - 1] * random.uniform(0.8, 1.2)


def signed_headers(delivery: Delivery, now: datetime) -> dict[str, str]:
    signature = Webhook(delivery.secret).sign(delivery.id, now, delivery.payload)
    return {
        "content-type": "application/json",
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


async def send(delivery: Delivery, *, client: httpx.AsyncClient, settings: Settings) -> Attempt:
    """One attempt, ended after ``webhook_timeout_s`` in all (address check, connect, send, answer)."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    status, error = None, None
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            # Checked again, and sent to the checked address: DNS may have changed since submit.
            # The check resolves the name, which blocks, so it runs on a thread.
            request = await asyncio.to_thread(
                pinned_request, client, "POST", delivery.url, settings, field="callback_url",
                content=delivery.payload.encode(), headers=signed_headers(delivery, now),
            )
            # the answer's body is of no use to us, and a receiver could make it endless
            response = await client.send(request, stream=True)
            await response.aclose()
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (TimeoutError, httpx.TimeoutException):
        error = f"Timeout: no answer within {settings.webhook_timeout_s:g} s"
    except (httpx.HTTPError, InfiniteTalkError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Attempt(at=now, status=status, error=error, ms=round((time.perf_counter() - started) * 1000))


class WebhookSender:
    """A daemon thread running an event loop that delivers whatever the outbox says is due,
    up to ``webhook_concurrency`` at a time."""

    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self._outbox, self._settings = outbox, settings
        self._slots = max(1, settings.webhook_concurrency)
        # claimed only when a slot is free, so the lease needs to cover one attempt and its record
        self._lease_s = max(LEASE_S, 2 * settings.webhook_timeout_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poke: asyncio.Event | None = None
        self._stopping = False
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def wake(self) -> None:
        """Look for due deliveries now (thread-safe; a task just ended)."""
        self._call(lambda: self._poke.set())

    def stop(self) -> None:
        self._stopping = True
        self._call(lambda: self._poke.set())
        if self._thread.is_alive():
            self._thread.join(timeout=STOP_GRACE_S + 3)

    def _call(self, callback: object) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the loop has closed: the sender is stopping anyway
            pass

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        # address checks and database calls run on threads; a few slow DNS answers must not hold up the rest
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(self._slots + 4, "webhook-io"))
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        self._poke = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._started.set()
        timeout = httpx.Timeout(self._settings.webhook_timeout_s)
        limits = httpx.Limits(max_connections=self._slots, max_keepalive_connections=self._slots)
        # no redirects: a redirect is a way around the address check
        async with httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False) as client:
            in_flight: dict[asyncio.Task, str] = {}
            while not self._stopping:
                free = self._slots - len(in_flight)
                if free > 0:
                    for delivery in await self._claim(free):
                        task = asyncio.create_task(self._deliver(client, delivery))
                        in_flight[task] = delivery.id
                        task.add_done_callback(lambda done: self._finished(in_flight, done))
                try:
                    await asyncio.wait_for(self._poke.wait(), POLL_S)
                except TimeoutError:
                    pass
                self._poke.clear()
            await self._drain(in_flight)

    def _finished(self, in_flight: dict[asyncio.Task, str], task: asyncio.Task) -> None:
        in_flight.pop(task, None)
        self._poke.set()  # a slot is free: more may be due

    async def _claim(self, limit: int) -> list[Delivery]:
        try:
            return await asyncio.to_thread(self._outbox.claim_due, limit=limit, lease_s=self._lease_s)
        except Exception:  # keep delivering after a database hiccup
            log.exception("webhook sender: claiming deliveries failed")
            return []

    async def _drain(self, in_flight: dict[asyncio.Task, str]) -> None:
        if not in_flight:
            return
        _, pending = await asyncio.wait(list(in_flight), timeout=STOP_GRACE_S)
        cut = [in_flight[task] for task in pending]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if cut:
            try:  # due again at once, rather than when the lease runs out
                await asyncio.to_thread(self._outbox.release, cut)
            except Exception:
                log.exception("webhook sender: releasing %d delivery(ies) failed; they go again after the lease",
                              len(cut))

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        attempt = await send(delivery, client=client, settings=self._settings)
        retry_in = None if attempt.ok else retry_delay(delivery.attempts + 1, self._settings.webhook_retry_delays_s)
        log.info(
            "webhook %s attempt %d to %s: %s%s", delivery.id, delivery.attempts + 1, delivery.url,
            attempt.status or attempt.error, "" if attempt.ok else (f", retry in {retry_in:.1f} s" if retry_in else ", giving up"),
        )
        try:
            await asyncio.to_thread(self._outbox.record, delivery.id, attempt, retry_in_s=retry_in)
        except Exception:  # the lease runs out and the delivery goes again: at least once
            log.exception("webhook sender: recording attempt of %s failed", delivery.id)
