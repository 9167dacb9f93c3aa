"""Tables of the task service. Created and changed only by the Alembic migrations beside this file.

Money is stored in integer micro-dollars (1 USD = 1_000_000) so sums are exact. Times are naive UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

MICROS = 1_000_000


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED)


UNFINISHED = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: sha256 of the key; the key itself is shown once, at creation.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    balance_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    creates_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_concurrent: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Model names this key may use; None: all.
    allowed_models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    #: Standard Webhooks secret (whsec_...) that signs this key's webhook deliveries.
    webhook_secret: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_key_created", "api_key_id", "created_at"),
        Index("ix_tasks_status", "status"),
        # coalesce: a NULL key id (open mode) must still make one idempotency key one task
        Index("ix_tasks_idempotency", text("coalesce(api_key_id, '')"), "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"), nullable=True)
    model: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.QUEUED.value)
    #: The request as the caller sent it (data: URIs shortened), for display.
    request: Mapped[dict] = mapped_column(JSON)
    #: The same request with every media reference replaced by a local file in the task's input dir.
    local_request: Mapped[dict] = mapped_column(JSON)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    callback_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_url: Mapped[str] = mapped_column(Text)

    audio_seconds: Mapped[float] = mapped_column(Float)
    billed_seconds: Mapped[int] = mapped_column(Integer)
    price_micros: Mapped[int] = mapped_column(BigInteger)
    charged: Mapped[bool] = mapped_column(Boolean, default=False)
    refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What came back to the key when the task ended: the whole price (a failure of ours, or before its first
    #: chunk) or the part of it the video not made was to cost (canceled part-way). 0 otherwise.
    refund_micros: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")

    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str | None] = mapped_column(String(40), nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The worker that claimed the task last (``WorkerRow.id``); its lease is heartbeat_at + stale_after_s.
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(String(80), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: name -> metadata of each output file (duration_s, width, height, fps, num_frames).
    outputs: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    #: A chunked render so far: chunks/frames done of how many, fps, eta_s (at the run's measured rate, as of
    #: ``at``) and the live preview's segments ([name, seconds] each). None until its first chunk is done.
    chunks: Mapped[dict | None] = mapped_column(JSON, nullable=True)

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def state(self) -> TaskStatus:
        return TaskStatus(self.status)


class Upload(Base):
    """An uploaded input file. Its bytes live in storage under the upload's id; the caller's file name is
    only data here, never a path."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_key_expires", "api_key_id", "expires_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    filename: Mapped[str] = mapped_column(String(100))
    #: Bytes stored (for a two-step upload: the size it was promised until its bytes arrive).
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    #: False until the bytes are in place (a two-step upload between its two steps).
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    #: A PUT has taken the upload (``Uploads.claim``): a second PUT of the same id is refused, not mixed in.
    receiving: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class WorkerRow(Base):
    """A worker process (one per GPU) and its heartbeat, for `infinitetalk workers` and /metrics. The task it
    runs is the running one whose ``worker_id`` is this row's (``runtime.fleet.live_workers``)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    gpu: Mapped[str | None] = mapped_column(String(40), nullable=True)
    engine: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: Set when the process stops cleanly; a row without it whose heartbeat lapsed died.
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LedgerEntry(Base):
    """One movement of a key's money: top_up (+), reserve (-), refund (+)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    balance_after_micros: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one callback URL, with every attempt at delivering it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_due", "state", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # also the webhook-id header
    task_id: Mapped[str] = mapped_column(String(40), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    url: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: [{"at": iso, "status": int | None, "error": str | None, "ms": int}, ...]
    attempt_log: Mapped[list] = mapped_column(JSON, default=list)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
