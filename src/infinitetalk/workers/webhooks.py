"""Webhook delivery: Standard Webhooks signatures, at-least-once with exponential backoff and jitter.

Deliveries live in an ``Outbox`` (the task service's table): the sender claims the due ones with a lease
(so a crash mid-send means a retry, never a loss), posts each, and records the attempt and when to try
again. A delivery keeps its id, which is the ``webhook-id`` header, on every retry, so receivers can
drop duplicates.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import httpx
from standardwebhooks.webhooks import Webhook

from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError
from infinitetalk.media.fetch import pinned_request

log = logging.getLogger(__name__)

POLL_S = 0.25
#: A claimed delivery is invisible to other senders this long (longer than one attempt can take).
LEASE_S = 60.0


@dataclass(frozen=True)
class Delivery:
    id: str
    url: str
    payload: str
    secret: str
    #: attempts made before this one
    attempts: int


@dataclass(frozen=True)
class Attempt:
    at: datetime
    status: int | None
    error: str | None
    ms: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class Outbox(Protocol):
    def claim_due(self, *, limit: int, lease_s: float) -> list[Delivery]: ...

    def record(self, delivery_id: str, attempt: Attempt, *, retry_in_s: float | None) -> None: ...


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


def send(delivery: Delivery, *, client: httpx.Client, settings: Settings) -> Attempt:
    now = datetime.now(UTC)
    started = time.perf_counter()
    status, error = None, None
    try:
        # Checked again, and sent to the checked address: DNS may have changed since submit.
        request = pinned_request(client, "POST", delivery.url, settings, field="callback_url",
                                 content=delivery.payload.encode(), headers=signed_headers(delivery, now))
        response = client.send(request)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except (httpx.HTTPError, InfiniteTalkError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return Attempt(at=now, status=status, error=error, ms=round((time.perf_counter() - started) * 1000))


class WebhookSender:
    """A daemon thread that delivers whatever the outbox says is due."""

    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self._outbox, self._settings = outbox, settings
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)
        # no redirects: a redirect is a way around the address check
        self._client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for delivery in self._outbox.claim_due(limit=20, lease_s=LEASE_S):
                    self._deliver(delivery)
            except Exception:  # keep delivering after a database hiccup
                log.exception("webhook sender: claiming deliveries failed")
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _deliver(self, delivery: Delivery) -> None:
        attempt = send(delivery, client=self._client, settings=self._settings)
        retry_in = None if attempt.ok else retry_delay(delivery.attempts + 1, self._settings.webhook_retry_delays_s)
        log.info(
            "webhook %s attempt %d to %s: %s%s", delivery.id, delivery.attempts + 1, delivery.url,
            attempt.status or attempt.error, "" if attempt.ok else (f", retry in {retry_in:.1f} s" if retry_in else ", giving up"),
        )
        self._outbox.record(delivery.id, attempt, retry_in_s=retry_in)
