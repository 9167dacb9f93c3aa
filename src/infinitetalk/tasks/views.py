"""Task rows -> TaskPublic (what GET, lists, SSE and webhooks all show)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError
from infinitetalk.render.checkpoint import PLAYLIST
from infinitetalk.storage import Storage
from infinitetalk.tasks.models import MICROS, Task, TaskStatus, utcnow
from infinitetalk.tasks.schemas import (
    HLS_PLAYLIST,
    TaskCost,
    TaskError,
    TaskOutput,
    TaskProgress,
    TaskPublic,
    TaskTimings,
    TaskUrls,
)

#: What a failed task's ``error_detail`` column holds: whose fault the failure was (providers need it
#: to pick their code and HTTP status; the refund followed it too).
CALLER_FAULT, OUR_FAULT = "caller", "server"

#: Rows written before tasks shared the request errors' codes hold one of these labels in ``error_code``
#: (and the fine code in ``error_detail``): label -> (the code it stood for, caller's fault).
_LEGACY_LABELS = {
    "NoFaceDetected": ("no_face_detected", True),
    "BadRequest": ("invalid_request", True),
    "SensitiveContent": ("sensitive_content", True),
    "PromptInvalid": ("prompt_invalid", True),
    "Timeout": ("timeout", False),
    "InternalError": ("internal_error", False),
}


@dataclass(frozen=True)
class Failure:
    """How a failed task ended, however old its row."""

    code: str
    message: str
    caller_fault: bool


def fault_of(error: InfiniteTalkError) -> str:
    return CALLER_FAULT if error.caller_fault else OUR_FAULT


def task_failure(task: Task) -> Failure | None:
    """The task's error in today's vocabulary; None when it has none (queued, running, done, canceled)."""
    if not task.error_code:
        return None
    message = task.error_message or ""
    if task.error_code in _LEGACY_LABELS:
        code, caller = _LEGACY_LABELS[task.error_code]
        return Failure(code=task.error_detail or code, message=message, caller_fault=caller)
    return Failure(code=task.error_code, message=message, caller_fault=task.error_detail == CALLER_FAULT)


def charged_micros(task: Task) -> int:
    """What the task costs its key: the price reserved, less what came back (a finished task's final bill)."""
    return task.price_micros - (task.refund_micros or 0) if task.charged else 0


def charged_seconds(task: Task) -> int:
    """The billed seconds the key paid for in the end (the video made, for a task canceled part-way)."""
    if not task.price_micros or not task.billed_seconds:
        return 0
    return charged_micros(task) // (task.price_micros // task.billed_seconds)


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None else None


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return round((end - start).total_seconds() * 1000) if start and end else None


def _eta(task: Task) -> float | None:
    if task.state is not TaskStatus.RUNNING:
        return None
    chunks = task.chunks or {}
    measured_at = datetime.fromisoformat(chunks["at"]) if chunks.get("at") else None
    # Only this run's own measure: a run that resumed spends its first seconds loading and catching up, so the
    # last run's estimate, or the task's progress over this run's time, would jump about (97 -> 113 -> 339 s).
    if chunks.get("eta_s") is not None and task.started_at and measured_at and measured_at >= task.started_at:
        since = (utcnow() - measured_at).total_seconds()
        return round(max(0.0, chunks["eta_s"] - since), 1)
    if not task.started_at or task.progress < 0.02 or (task.attempts or 1) > 1:
        return None
    elapsed = (utcnow() - task.started_at).total_seconds()
    return round(elapsed * (1 - task.progress) / task.progress, 1)


#: The engines' stage while they make a chunk ("chunk 2/33", "chunk 2/33, step 3/8"): the chunk in the making.
_CHUNK_STAGE = re.compile(r"chunk (\d+)/(\d+)")


def _progress(task: Task) -> TaskProgress:
    chunks = task.chunks or {}
    done = chunks.get("frames_done")
    running = task.state is TaskStatus.RUNNING
    stage = task.stage if running else None  # what it was doing when it stopped is no longer what it does
    chunk, count = chunks.get("done"), chunks.get("count")
    # A chunk is recorded once its segment is stored, a step behind the engine's stage; until the first one is,
    # the stage already says how many there are (and ``chunk`` stays what has a segment: none yet).
    making = _CHUNK_STAGE.match(stage or "")
    if making:
        chunk, count = chunk or 0, count or int(making[2])
    return TaskProgress(
        fraction=round(task.progress, 4), stage=stage, eta_s=_eta(task), chunk=chunk,
        chunks=count, frames_done=done, frames=chunks.get("frames"),
        video_s_done=round(done / chunks["fps"], 2) if done is not None else None,
    )


def _preview(task: Task, base: str, storage: Storage, expires_at: datetime) -> TaskOutput | None:
    """The live HLS preview of the chunks finished so far, while the task is queued again, runs, and after."""
    segments = (task.chunks or {}).get("segments")
    if not segments or task.state not in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.SUCCEEDED):
        return None
    expires = int(_aware(expires_at).timestamp())
    return TaskOutput(name=PLAYLIST, url=file_url(storage, base, task.id, PLAYLIST, expires),
                      expires_at=_aware(expires_at), content_type=HLS_PLAYLIST,
                      duration_s=round(sum(seconds for _, seconds in segments), 3))


def preview_ended(task: Task, settings: Settings) -> bool:
    """Whether a finished task's live preview is gone: its segments are deleted ``preview_grace_s`` after the
    video (which holds the same frames) was stored."""
    return task.state is TaskStatus.SUCCEEDED and task.finished_at is not None and \
        utcnow() >= task.finished_at + timedelta(seconds=settings.preview_grace_s)


def base_url(task: Task, settings: Settings) -> str:
    return (settings.public_url or task.base_url).rstrip("/")


def file_url(storage: Storage, base: str, task_id: str, name: str, expires: int) -> str:
    """The link to one of a task's stored files: the API's file route, with the signature that lets whoever
    holds it fetch that file until ``expires`` (no key needed)."""
    query = urllib.parse.urlencode({"expires": expires, "sig": storage.sign(task_id, name, expires)})
    return f"{base.rstrip('/')}/v1/files/{task_id}/{name}?{query}"


def task_public(task: Task, *, storage: Storage, settings: Settings) -> TaskPublic:
    base = base_url(task, settings)
    outputs, expired = [], False
    # a running task's preview link lasts as long as a finished video's (rounded: the same URL for a while)
    expires_at = task.finished_at or utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    expires_at += timedelta(seconds=settings.output_ttl_s)
    # a canceled task's output is the video made before the cancel (``partial``), when any was
    if task.state in (TaskStatus.SUCCEEDED, TaskStatus.CANCELED) and task.finished_at and task.outputs:
        expired = expires_at <= utcnow()
        expires = int(_aware(expires_at).timestamp())
        if not expired:
            outputs = [
                TaskOutput(name=name, url=file_url(storage, base, task.id, name, expires),
                           expires_at=_aware(expires_at), **meta)
                for name, meta in task.outputs.items()
            ]
    preview = None if expired or preview_ended(task, settings) else _preview(task, base, storage, expires_at)
    if preview is not None:
        outputs.append(preview)
    failure = task_failure(task)
    error = TaskError(code=failure.code, message=failure.message) if failure else None
    return TaskPublic(
        id=task.id,
        model=task.model,
        status=task.state,
        cancel_requested=bool(task.cancel_requested),
        progress=_progress(task),
        seed=task.seed,
        cost=TaskCost(
            audio_seconds=round(task.audio_seconds, 3), billed_seconds=task.billed_seconds,
            price=task.price_micros / MICROS, charged=task.charged, refunded=task.refunded,
            refund=(task.refund_micros or 0) / MICROS, total=charged_micros(task) / MICROS,
        ),
        timings=TaskTimings(
            created_at=_aware(task.created_at), started_at=_aware(task.started_at),
            finished_at=_aware(task.finished_at),
            queue_delay_ms=_ms(task.created_at, task.started_at), execution_ms=_ms(task.started_at, task.finished_at),
        ),
        outputs=outputs,
        outputs_expired=expired,
        error=error,
        callback_url=task.callback_url,
        urls=TaskUrls(
            get=f"{base}/v1/tasks/{task.id}", cancel=f"{base}/v1/tasks/{task.id}/cancel",
            events=f"{base}/v1/tasks/{task.id}/events",
        ),
    )
