"""Webhook signing, the retry schedule, and delivery: concurrent, each attempt under its own deadline."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from infinitetalk.config import Settings
from infinitetalk.runtime.webhooks import WebhookSender, retry_delay, signed_headers
from infinitetalk.tasks.db import SessionFactory, open_database
from infinitetalk.tasks.keys import new_webhook_secret
from infinitetalk.tasks.models import Task, WebhookDelivery, utcnow
from infinitetalk.tasks.outbox import Delivery, Outbox, enqueue


def test_signature_verifies_with_standardwebhooks() -> None:
    secret = new_webhook_secret()
    delivery = Delivery(id="msg_1", url="https://example.com", payload='{"type":"task.succeeded"}', secret=secret,
                        attempts=0)
    headers = signed_headers(delivery, datetime.now(UTC))
    assert Webhook(secret).verify(delivery.payload, headers) == {"type": "task.succeeded"}
    assert headers["webhook-id"] == "msg_1"
    with pytest.raises(Exception, match="signature"):
        Webhook(new_webhook_secret()).verify(delivery.payload, headers)


def test_retry_schedule_is_bounded_with_jitter() -> None:
    schedule = [1.0, 10.0, 100.0]
    delays = [retry_delay(n, schedule) for n in (1, 2, 3)]
    for delay, base in zip(delays, schedule, strict=True):
        assert 0.8 * base <= delay <= 1.2 * base
    assert retry_delay(4, schedule) is None
    assert len({retry_delay(2, schedule) for _ in range(20)}) > 1, "jitter spreads retries"


# --- delivery against real receivers on loopback, through the real outbox (SQLite) ---


class _Receiver:
    """A loopback webhook receiver. ``hang``: hold each request unanswered until ``release``;
    ``trickle``: answer with headers that never end, a byte every 100 ms."""

    def __init__(self, *, hang: bool = False, trickle: bool = False) -> None:
        self.arrived, self.release, self.cut_off = threading.Event(), threading.Event(), threading.Event()
        self.ids: list[str] = []
        self.answered = 0
        self.seen_hanging: list[int] | None = None  # filled in by the test
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.ids.append(self.headers["webhook-id"])
                receiver.on_arrival()
                receiver.arrived.set()
                if trickle:
                    self._trickle()
                    return
                if hang:
                    receiver.release.wait(60)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.answered += 1

            def _trickle(self) -> None:
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while not receiver.release.wait(0.1):
                        self.wfile.write(b"a")
                        self.wfile.flush()
                except OSError:  # the sender hung up on us
                    receiver.cut_off.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.on_arrival = lambda: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://localhost:{self.server.server_port}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[tuple[Outbox, Settings, SessionFactory]]:
    settings = Settings(data_dir=tmp_path, fetch_allow_hosts=["localhost"], webhook_timeout_s=60,
                        webhook_retry_delays_s=[30])
    db, sessions = open_database(settings)
    yield Outbox(sessions, settings), settings, sessions
    db.dispose()


def _enqueue(sessions: SessionFactory, url: str, *, due_in_s: float = 0.0) -> str:
    task = Task(id="task_" + secrets.token_hex(6), api_key_id=None, callback_url=url)
    with sessions.begin() as session:
        delivery = enqueue(session, task=task, event_type="task.succeeded", data={"id": task.id})
        delivery.next_attempt_at = utcnow() + timedelta(seconds=due_in_s)
        return delivery.id


def _log(sessions: SessionFactory, delivery_id: str) -> list[dict]:
    with sessions() as session:
        return session.get(WebhookDelivery, delivery_id).attempt_log


def test_a_healthy_receiver_is_not_held_up_by_hanging_ones(outbox: tuple[Outbox, Settings, SessionFactory]) -> None:
    box, settings, sessions = outbox
    hanging = [_Receiver(hang=True) for _ in range(3)]
    healthy = _Receiver()
    healthy.on_arrival = lambda: setattr(healthy, "seen_hanging", [r.answered for r in hanging])
    try:
        for receiver in hanging:  # due first, so a one-at-a-time sender meets them first
            _enqueue(sessions, receiver.url, due_in_s=-10)
        healthy_id = _enqueue(sessions, healthy.url)
        sender = WebhookSender(box, settings)
        sender.start()
        try:
            assert healthy.arrived.wait(30), "the healthy receiver waited behind the hanging ones"
            assert healthy.seen_hanging == [0, 0, 0], "it arrived while all three still hung"
            assert all(r.arrived.wait(30) for r in hanging), "each hanging receiver got its own attempt"
            assert healthy.ids == [healthy_id]
        finally:
            for receiver in hanging:
                receiver.release.set()
            sender.stop()
    finally:
        for receiver in [*hanging, healthy]:
            receiver.close()


def test_an_attempt_ends_at_the_timeout_even_while_bytes_trickle_in(
        outbox: tuple[Outbox, Settings, SessionFactory]) -> None:
    box, settings, sessions = outbox
    settings = settings.model_copy(update={"webhook_timeout_s": 1.0})  # each trickled byte comes well within it
    slow = _Receiver(trickle=True)
    delivery_id = _enqueue(sessions, slow.url)
    sender = WebhookSender(box, settings)
    sender.start()
    try:
        assert slow.cut_off.wait(30), "the sender kept reading an answer that never ends"
    finally:
        sender.stop()
        slow.close()
    entries = _log(sessions, delivery_id)
    assert len(entries) == 1 and entries[0]["status"] is None
    assert entries[0]["error"].startswith("Timeout")


def test_a_delivery_cut_by_stop_is_due_again_at_once(outbox: tuple[Outbox, Settings, SessionFactory]) -> None:
    box, settings, sessions = outbox
    hanging = _Receiver(hang=True)
    delivery_id = _enqueue(sessions, hanging.url)
    sender = WebhookSender(box, settings)
    sender.start()
    try:
        assert hanging.arrived.wait(30)
    finally:
        sender.stop()  # mid-attempt: the receiver has not answered
        hanging.close()
    with sessions() as session:
        row = session.get(WebhookDelivery, delivery_id)
        assert (row.state, row.attempts) == ("pending", 0)
        assert row.next_attempt_at <= utcnow(), "it waits for the lease to run out instead of going again"
    assert box.claim_due(limit=5, lease_s=60)[0].id == delivery_id
