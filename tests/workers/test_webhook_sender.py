"""Webhook signing and the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from infinitetalk.tasks.keys import new_webhook_secret
from infinitetalk.workers.webhooks import Delivery, retry_delay, signed_headers


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
