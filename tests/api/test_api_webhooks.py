"""Webhooks: signed per Standard Webhooks with the key's secret, retried with the same id after a 500."""

from __future__ import annotations

import json

from api_servers import FileServer, Server, WebhookReceiver, cli, make_key, settings_for, wait_until
from standardwebhooks.webhooks import Webhook


def test_webhook_is_signed_and_retried(keyed_server: Server, file_server: FileServer,
                                       webhook_receiver: WebhookReceiver) -> None:
    key = make_key(keyed_server.data_dir, "hooked", balance=1.0)
    secret = cli("keys", "secret", key["id"], data_dir=keyed_server.data_dir).strip()
    assert secret == key["webhook_secret"]
    webhook_receiver.statuses = [500, 500]  # two failures, then 200
    client = keyed_server.client(key["key"])
    task = client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav"),
                          "callback_url": webhook_receiver.url})
    wait_until(lambda: len(webhook_receiver.received) >= 3, timeout=60, what="three delivery attempts")
    attempts = webhook_receiver.received
    assert [a.answered for a in attempts[:3]] == [500, 500, 200]
    assert len({a.headers["webhook-id"] for a in attempts}) == 1, "every retry keeps the webhook-id"
    verifier = Webhook(secret)
    for attempt in attempts:
        payload = verifier.verify(attempt.body, attempt.headers)  # raises if the signature is wrong
        assert payload["type"] == "task.succeeded"
        assert payload["data"]["id"] == task["id"]
        assert payload["data"]["outputs"][0]["url"]
    tampered = dict(attempts[0].headers, **{"webhook-signature": "v1,AAAA"})
    try:
        verifier.verify(attempts[0].body, tampered)
        raise AssertionError("a bad signature verified")
    except Exception as exc:  # noqa: BLE001 - the library's own error type
        assert "signature" in str(exc).lower()
    assert json.loads(attempts[0].body)["data"]["status"] == "succeeded"


def test_webhook_gives_up_after_the_schedule(keyed_server: Server, file_server: FileServer,
                                             webhook_receiver: WebhookReceiver) -> None:
    key = make_key(keyed_server.data_dir, "hook-down", balance=1.0)
    webhook_receiver.statuses = [503] * 10
    client = keyed_server.client(key["key"])
    client.submit({"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav"),
                   "callback_url": webhook_receiver.url})
    # the test server's schedule is 3 retries: 4 attempts, then nothing more
    wait_until(lambda: len(webhook_receiver.received) >= 4, timeout=60, what="four attempts")
    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.models import WebhookDelivery

    db, sessions = open_database(settings_for(keyed_server.data_dir))
    try:
        def given_up() -> WebhookDelivery | None:
            with sessions() as session:
                row = session.query(WebhookDelivery).filter_by(api_key_id=key["id"]).one()
                return row if row.state == "failed" else None

        row = wait_until(given_up, timeout=30, what="the delivery to be given up")
    finally:
        db.dispose()
    assert row.attempts == 4 and len(row.attempt_log) == 4
    assert all(entry["status"] == 503 for entry in row.attempt_log)
    assert len(webhook_receiver.received) == 4
