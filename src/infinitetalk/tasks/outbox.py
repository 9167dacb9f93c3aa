"""The webhook outbox: deliveries are rows written in the same transaction as the status change they
announce, so a finished task always gets its webhook, even if the process dies right after.

A row holds our own ``{type, timestamp, data}`` envelope. A task submitted through a provider-compatible route
names a ``callback_format`` (``apixo``, ``runpod``, ...); its deliveries are formatted as that provider's users
expect when they are claimed, by the formats the API process hands in (``api.compat.WEBHOOK_FORMATS``), so the
process that finished the task (a GPU worker) never imports the API.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infinitetalk.config import Settings
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.keys import new_webhook_secret
from infinitetalk.tasks.models import ApiKey, Task, WebhookDelivery, utcnow
from infinitetalk.tasks.schemas import TaskPublic

log = logging.getLogger("infinitetalk.tasks")

#: (task row, its public view as the envelope holds it) -> the JSON body to POST.
WebhookFormat = Callable[[Task, TaskPublic], dict]


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


def open_mode_secret(settings: Settings) -> str:
    """The secret that signs webhooks of tasks made without a key (open mode); kept in data_dir."""
    path = settings.data_dir / "webhook-secret.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(new_webhook_secret())
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


def enqueue(session: Session, *, task: Task, event_type: str, data: dict) -> WebhookDelivery:
    """Add a delivery of ``event_type`` for ``task`` (in the caller's transaction)."""
    now = utcnow()
    delivery_id = "msg_" + secrets.token_hex(12)
    body = {"type": event_type, "timestamp": now.isoformat() + "Z", "data": data}
    delivery = WebhookDelivery(
        id=delivery_id, task_id=task.id, api_key_id=task.api_key_id, url=task.callback_url,
        event_type=event_type, payload=json.dumps(body, default=str), state="pending",
        attempts=0, attempt_log=[], next_attempt_at=now, created_at=now,
    )
    session.add(delivery)
    return delivery


class Outbox:
    def __init__(self, sessions: SessionFactory, settings: Settings, *,
                 formats: Mapping[str, WebhookFormat] | None = None) -> None:
        self._sessions, self._settings, self._formats = sessions, settings, dict(formats or {})

    def claim_due(self, *, limit: int, lease_s: float) -> list[Delivery]:
        now = utcnow()
        claimed = []
        with self._sessions.begin() as session:
            rows = session.execute(
                select(WebhookDelivery, ApiKey.webhook_secret, Task)
                .outerjoin(ApiKey, ApiKey.id == WebhookDelivery.api_key_id)
                .outerjoin(Task, Task.id == WebhookDelivery.task_id)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            ).all()
            for delivery, secret, task in rows:
                # the lease: only the sender whose UPDATE matches the old time gets this delivery
                taken = session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery.id,
                           WebhookDelivery.next_attempt_at == delivery.next_attempt_at)
                    .values(next_attempt_at=now + timedelta(seconds=lease_s))
                    .execution_options(synchronize_session=False)
                ).rowcount
                if taken:
                    claimed.append(Delivery(
                        id=delivery.id, url=delivery.url, payload=self._formatted(delivery, task),
                        secret=secret or open_mode_secret(self._settings), attempts=delivery.attempts,
                    ))
        return claimed

    def _formatted(self, delivery: WebhookDelivery, task: Task | None) -> str:
        """The body to send: our envelope, or the provider's shape the task was submitted with. The same stored
        data gives the same bytes on every retry, so receivers can compare duplicates."""
        name = (task.request or {}).get("callback_format") if task is not None else None
        if not name:
            return delivery.payload
        fmt = self._formats.get(name)
        if fmt is None:
            log.error("task %s: unknown callback format %r; sending the native body", delivery.task_id, name)
            return delivery.payload
        view = TaskPublic.model_validate(json.loads(delivery.payload)["data"])
        return json.dumps(fmt(task, view), default=str)

    def record(self, delivery_id: str, attempt: Attempt, *, retry_in_s: float | None) -> None:
        with self._sessions.begin() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            delivery.attempts += 1
            entry = {"at": attempt.at.isoformat(), "status": attempt.status, "error": attempt.error, "ms": attempt.ms}
            delivery.attempt_log = [*delivery.attempt_log, entry]
            if attempt.ok:
                delivery.state = "delivered"
            elif retry_in_s is None:
                delivery.state = "failed"
            else:
                delivery.next_attempt_at = utcnow() + timedelta(seconds=retry_in_s)

    def release(self, delivery_ids: list[str]) -> None:
        """Make claimed deliveries due now (their sender stopped mid-attempt) instead of after the lease."""
        with self._sessions.begin() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.state == "pending")
                .values(next_attempt_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def deliveries(self, task_id: str) -> list[WebhookDelivery]:
        with self._sessions() as session:
            return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.task_id == task_id)))
