"""The task service: submit, get, list, cancel, estimate. Every router (native, provider-compatible, CLI)
calls these; none of them touch the store, billing or the dispatcher themselves."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine, Row, and_, bindparam, or_, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import make_transient_to_detached

from infinitetalk.config import Settings
from infinitetalk.errors import Conflict, InvalidRequest, NotFound
from infinitetalk.media.fetch import check_url
from infinitetalk.schema import GenerationRequest, Sampling
from infinitetalk.storage import Storage
from infinitetalk.tasks import billing, limits, staging
from infinitetalk.tasks.catalog import model_id
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.locks import quota_lock
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus
from infinitetalk.tasks.ports import Dispatcher, TaskMetrics
from infinitetalk.tasks.schemas import Estimate, EstimateRequest
from infinitetalk.tasks.uploads import Uploads

log = logging.getLogger("infinitetalk.tasks")


def request_hash(payload: dict) -> str:
    """What an Idempotency-Key is matched against: the body as canonical JSON (key order ignored). Rows keep it,
    so these bytes never change: a retry across an upgrade must still find its task."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class TaskService:
    def __init__(self, *, sessions: SessionFactory, storage: Storage, uploads: Uploads, settings: Settings,
                 lifecycle: TaskLifecycle, dispatcher: Dispatcher, metrics: TaskMetrics,
                 reads: Engine | None = None) -> None:
        self.sessions, self.storage, self.uploads, self.settings = sessions, storage, uploads, settings
        self.lifecycle, self.dispatcher, self.metrics = lifecycle, dispatcher, metrics
        # the reads below take its connections without a Session; ``reads``: a pool of their own (SQLite)
        self._engine: Engine = reads or sessions.kw["bind"]

    # --- submit ---
    def submit(self, *, key: ApiKey | None, payload: dict, base_url: str, idempotency_key: str | None = None,
               body_hash: str | None = None, callback_format: str | None = None,
               min_billed_seconds: int | None = None) -> tuple[Task, bool]:
        """Validate, fetch + probe, price, reserve and queue. Returns (task, created); created is False
        when ``idempotency_key`` names an earlier task with the same body. Provider-compatible routes pass
        their webhook body format (``tasks.callbacks``) and billing minimum as data."""
        key_id = key.id if key else None
        body_hash = body_hash or request_hash(payload)
        longest = Task.__table__.c.idempotency_key.type.length
        if idempotency_key and len(idempotency_key) > longest:
            # PostgreSQL refuses a longer value at the INSERT (SQLite would keep it): say so up front, on both
            raise InvalidRequest(f"Idempotency-Key: at most {longest} characters", field="Idempotency-Key")
        if idempotency_key:
            existing = self._by_idempotency(key_id, idempotency_key, body_hash)
            if existing:
                return existing, False
        payload = dict(payload)
        callback_url = payload.pop("callback_url", None)
        request = GenerationRequest.parse(payload)
        model = model_id(request.mode)
        limits.check_model(key, model)
        if callback_url is not None:
            if not isinstance(callback_url, str):
                raise InvalidRequest("callback_url: must be a URL string", field="callback_url")
            check_url(callback_url, self.settings, field="callback_url")
        with self.sessions() as session:
            limits.check_limits(session, key, max_queued=self.settings.max_queued_per_key)

        task_id = "task_" + secrets.token_hex(10)
        dest = self.storage.input_dir(task_id)
        try:
            local, durations = staging.stage(request, dest, key_id=key_id, uploads=self.uploads, settings=self.settings)
            local = staging.relative_inputs(local, dest)  # the worker that runs it may keep them elsewhere
            seconds = billing.total_audio_seconds(durations, request.audio_layout)
            pricing = self.settings if min_billed_seconds is None else self.settings.model_copy(
                update={"min_billed_seconds": min_billed_seconds})
            quote = billing.quote(audio_seconds=seconds, resolution=request.resolution.value, settings=pricing,
                                  fast=request.sampling is Sampling.FAST)
            task = Task(
                id=task_id, api_key_id=key_id, model=model, status=TaskStatus.QUEUED.value,
                request=staging.shorten_data_uris({**payload, "callback_url": callback_url, **(
                    {"callback_format": callback_format} if callback_format else {})}),
                local_request=local.model_dump(mode="json"), idempotency_key=idempotency_key,
                request_hash=body_hash, callback_url=callback_url, base_url=base_url.rstrip("/"),
                audio_seconds=quote.audio_seconds, billed_seconds=quote.billed_seconds,
                price_micros=quote.price_micros, charged=key is not None, refunded=False, progress=0.0,
                attempts=0, cancel_requested=False,
            )
            # stored before the row exists: a worker may take the task the moment the row commits
            self.storage.store_inputs(task_id)
            with quota_lock(self.sessions, key_id) as session:
                # Counted again under the key's quota lock (open mode's callers share one), with the write they
                # guard: two racing submits can no longer both pass the limits.
                limits.check_limits(session, key, max_queued=self.settings.max_queued_per_key)
                if key is not None:
                    billing.reserve(session, key_id=key.id, amount_micros=quote.price_micros, task_id=task_id)
                session.add(task)
        except IntegrityError:
            # two submits with one idempotency key raced; the other one won
            self.storage.delete_inputs(task_id)
            existing = self._by_idempotency(key_id, idempotency_key, body_hash) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        except BaseException:
            self.storage.delete_inputs(task_id)
            raise
        self.metrics.accepted()
        log.info("task %s queued (key %s, %s, %d s billed, $%.4f)", task_id, key_id or "-", model,
                 quote.billed_seconds, quote.price)
        self.dispatcher.submit(task_id)
        return task, True

    def _by_idempotency(self, key_id: str | None, idempotency_key: str, body_hash: str) -> Task | None:
        with self.sessions() as session:
            task = session.scalars(
                select(Task).where(Task.idempotency_key == idempotency_key,
                                   Task.api_key_id.is_(None) if key_id is None else Task.api_key_id == key_id)
            ).first()
        if task is not None and task.request_hash != body_hash:
            raise Conflict("this Idempotency-Key was used with a different request body; use a new key",
                           code="idempotency_conflict")
        return task

    # --- read ---
    # Status polls, lists, SSE ticks and the provider routes' status reads all come here, so these two read
    # rows on a pooled connection without an ORM Session: its set-up and tear-down cost twice the SELECT
    # itself. What they return is the same detached Task a Session would have left behind.
    def get(self, *, key: ApiKey | None, task_id: str) -> Task:
        with self._engine.connect() as connection:
            row = connection.execute(_TASK_BY_ID, {"task_id": task_id}).first()
        if row is None or row.api_key_id != (key.id if key else None):
            raise NotFound(f"no task {task_id}")  # another key's task is as invisible as a missing one
        return _detached_task(row)

    def list(self, *, key: ApiKey | None, limit: int = 20, cursor: str | None = None,
             status: TaskStatus | None = None) -> tuple[list[Task], str | None]:
        key_id = key.id if key else None
        query = _TASK_ROWS.where(Task.api_key_id.is_(None) if key_id is None else Task.api_key_id == key_id)
        if status is not None:
            query = query.where(Task.status == status.value)
        if cursor:
            created, last_id = _decode_cursor(cursor)
            query = query.where(or_(Task.created_at < created, and_(Task.created_at == created, Task.id < last_id)))
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)).all()
        tasks = [_detached_task(row) for row in rows]
        more = len(tasks) > limit
        tasks = tasks[:limit]
        return tasks, (_encode_cursor(tasks[-1]) if more else None)

    # --- cancel ---
    def cancel(self, *, key: ApiKey | None, task_id: str) -> Task:
        task = self.get(key=key, task_id=task_id)
        if task.state.terminal:
            raise Conflict(f"task {task_id} already {task.status}; only queued or running tasks can be canceled",
                           code="task_finished")
        if not self.lifecycle.cancel_queued(task_id):
            # it is running (or just started): flag it (for workers anywhere) and trip the local token
            with self.sessions.begin() as session:
                row = session.get(Task, task_id)
                if row is not None and row.status == TaskStatus.RUNNING.value:
                    row.cancel_requested = True
            self.dispatcher.cancel(task_id)
            log.info("task %s cancel requested", task_id)
        return self.get(key=key, task_id=task_id)

    # --- delete ---
    def delete_outputs(self, *, key: ApiKey | None, task_id: str) -> Task:
        """Remove an ended task's files now instead of when they expire: its video, its live preview's segments
        and its stored inputs. The task stays listed, with its cost and no outputs: it is the key's record of a
        charge. Conflict while it is queued or running (a render would write them again)."""
        task = self.get(key=key, task_id=task_id)
        if not task.state.terminal:
            raise Conflict(f"task {task_id} is {task.status}: cancel it, or wait until it ends, then delete it",
                           code="task_not_finished")
        with self.sessions.begin() as session:
            row = session.get(Task, task_id)
            segments = (row.chunks or {}).get("segments") or []
            names = [*(row.outputs or {}), *(name for name, _ in segments)]
            row.outputs = None
            if segments:
                row.chunks = {**row.chunks, "segments": []}
        for name in names:
            self.storage.delete_output(task_id, name)
        self.storage.delete_inputs(task_id)
        log.info("task %s outputs deleted (%d files)", task_id, len(names))
        return self.get(key=key, task_id=task_id)

    # --- estimate ---
    def estimate(self, *, key: ApiKey | None, payload: dict) -> Estimate:
        try:
            request = EstimateRequest.model_validate(payload)
        except ValidationError as exc:
            raise InvalidRequest.from_errors(exc.errors()) from None
        with tempfile.TemporaryDirectory(prefix="infinitetalk-estimate-") as tmp:
            _, durations = staging.stage_audio(request.audio, Path(tmp), key_id=key.id if key else None,
                                               uploads=self.uploads, settings=self.settings)
        seconds = billing.total_audio_seconds(durations, request.audio_layout)
        quote = billing.quote(audio_seconds=seconds, resolution=request.resolution.value, settings=self.settings,
                              fast=request.sampling is Sampling.FAST)
        return Estimate(audio_seconds=round(seconds, 3), billed_seconds=quote.billed_seconds,
                        rate=quote.rate_micros / 1_000_000, price=quote.price, resolution=request.resolution)


#: Every mapped column of a task, labelled with its attribute's name (new columns come along by themselves).
_TASK_ROWS = select(*(getattr(Task, column.key) for column in sa_inspect(Task).column_attrs))
_TASK_BY_ID = _TASK_ROWS.where(Task.id == bindparam("task_id"))


_NEW_TASK = sa_inspect(Task).class_manager.new_instance


def _detached_task(row: Row) -> Task:
    """A Task from one of _TASK_ROWS' rows, as a closed Session leaves it: loaded, unchanged, in no session."""
    # Filled in as SQLAlchemy's own loader fills the instances it makes: Task(**values) would send each of its
    # ~30 values through the attribute events, which took longer than the SELECT.
    task = _NEW_TASK()
    task.__dict__.update(row._mapping)
    make_transient_to_detached(task)  # gives it its identity key, as a loaded instance has
    return task


def _encode_cursor(task: Task) -> str:
    return base64.urlsafe_b64encode(f"{task.created_at.isoformat()}|{task.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, task_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), task_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("cursor: not a cursor this API gave out", field="cursor") from None
