"""What every provider translator shares: a route class that answers errors in the provider's shape,
submit/get/wait on the one task service, and small conversions (times, output URLs, safety flags).

Nothing here knows a provider; each ``compat/<provider>/`` package holds its wire models (``protocol.py``)
and a thin router that maps them to a GenerationRequest and the task back to its response shape.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from infinitetalk.api.errors import store_error
from infinitetalk.api.fairness import fairness_of, key_id_of, run_submit
from infinitetalk.api.submission import read_json
from infinitetalk.api.waiting import wait_while_connected
from infinitetalk.errors import InfiniteTalkError, InvalidRequest, TooManyRequests
from infinitetalk.runtime.server import Runtime
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus
from infinitetalk.tasks.schemas import VIDEO_MP4, TaskPublic
from infinitetalk.tasks.views import task_failure, task_public

M = TypeVar("M", bound=BaseModel)
#: Turns one of our errors into the provider's error response.
ErrorRenderer = Callable[[InfiniteTalkError], Response]
#: A provider's error body for one of our errors and the HTTP status it is answered with.
ErrorBody = Callable[[InfiniteTalkError, int], dict]

#: Our statuses the providers do not document -> the one they do: an input over a cap (413), a conflict (409:
#: a reused idempotency key, a task already finished) and a task the caller stopped (499) are a 400 there.
PROVIDER_STATUS: Mapping[int, int] = {413: 400, 409: 400, 499: 400}


def error_renderer(body: ErrorBody, statuses: Mapping[int, int] = PROVIDER_STATUS) -> ErrorRenderer:
    """Our errors answered in a provider's ``body`` shape, with the status ``statuses`` maps ours to and the
    Retry-After of an error that says when to try again."""

    def render(exc: InfiniteTalkError) -> JSONResponse:
        status = statuses.get(exc.http_status, exc.http_status)
        headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None
        return JSONResponse(body(exc, status), status_code=status, headers=headers)

    return render


def translating_route(render: ErrorRenderer) -> type[APIRoute]:
    """An APIRoute whose errors (auth and limits from dependencies, validation, the service's own) are
    answered by ``render`` instead of the app's native ``{"error": ...}`` envelope."""

    class ProviderRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except InfiniteTalkError as exc:
                    return render(exc)
                except SQLAlchemyError as exc:
                    return render(store_error(exc))
                except RequestValidationError as exc:
                    return render(InvalidRequest.from_errors(exc.errors()))

            return handle

    return ProviderRoute


async def read_body(request: Request, model: type[M]) -> M:
    """The JSON body as the provider's wire model; pydantic's first error as one InvalidRequest."""
    payload = await read_json(request)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidRequest.from_errors(exc.errors()) from None


def rename_fields(exc: InfiniteTalkError, names: dict[str, str], messages: dict[str, str] | None = None) -> None:
    """Say a canonical field (``seed``, ``mask.0``) by the provider's name (``input.seed``), or replace the
    message by the provider's documented one, in place."""
    field = exc.field or ""
    if field in (messages or {}):
        exc.message = messages[field]  # type: ignore[index]
    elif field in names:
        # our messages begin "field: ..."; one that does not still gets the name in front, never glued on
        rest = exc.message[len(field) + 1:].lstrip() if exc.message.startswith(f"{field}:") else exc.message
        exc.message = f"{names[field]}: {rest}"
    if field in names:
        exc.field = names[field]


#: Our task failure codes that are not simply "the caller's request" or "our error" -> the label provider
#: routes show (the labels APIXO documents, which the others' free-text errors carry in front).
_LABELS = {"no_face_detected": "NoFaceDetected", "timeout": "Timeout", "sensitive_content": "SensitiveContent",
           "prompt_invalid": "PromptInvalid", "rate_limited": "RateLimited"}


def failure_label(task: Task) -> str | None:
    """A failed task's code as provider routes show it: NoFaceDetected, Timeout, SensitiveContent, PromptInvalid,
    BadRequest (any other fault of the caller's) or InternalError (ours). None when the task has not failed."""
    failure = task_failure(task)
    if failure is None:
        return None
    if failure.code in _LABELS:
        return _LABELS[failure.code]
    if failure.code.startswith("prompt"):
        return "PromptInvalid"
    return "BadRequest" if failure.caller_fault else "InternalError"


def failure_text(task: Task) -> str:
    """``Label: message``, the error string the free-text providers (RunPod, Segmind, WaveSpeed) show."""
    failure = task_failure(task)
    return f"{failure_label(task)}: {failure.message if failure else ''}"


async def submit(runtime: Runtime, key: ApiKey | None, payload: dict, base_url: str, *,
                 names: dict[str, str] | None = None, messages: dict[str, str] | None = None,
                 callback_format: str | None = None, min_billed_seconds: int | None = None) -> Task:
    """Submit a canonical payload (GenerationRequest fields + callback_url) to the task service."""
    try:
        task, _ = await run_submit(runtime, key, partial(
            runtime.service.submit, key=key, payload=payload, base_url=base_url,
            callback_format=callback_format if payload.get("callback_url") else None,
            min_billed_seconds=min_billed_seconds,
        ))
    except InfiniteTalkError as exc:  # a bad value, or an input URL that could not be fetched
        rename_fields(exc, names or {}, messages)
        raise
    return task


async def get(runtime: Runtime, key: ApiKey | None, task_id: str) -> Task:
    return await run_in_threadpool(runtime.service.get, key=key, task_id=task_id)


async def wait(request: Request, runtime: Runtime, key: ApiKey | None, task_id: str, seconds: float) -> Task:
    """The task once it has ended, or as it is after ``seconds``; ClientDisconnect as soon as the client hangs
    up. A key that already holds its most waits gets the task as it is now: the task exists by then, and each
    provider's answer for a task still running tells its client to poll."""
    waits, key_id = fairness_of(runtime).waits, key_id_of(key)
    try:
        waits.take(key_id)
    except TooManyRequests:
        return await get(runtime, key, task_id)
    try:
        return await wait_while_connected(request, runtime, key, task_id, seconds)
    finally:
        waits.give_back(key_id)


def view(runtime: Runtime, task: Task) -> TaskPublic:
    return task_public(task, storage=runtime.storage, settings=runtime.settings)


def video_urls(public: TaskPublic) -> list[str]:
    """The finished videos' URLs: the providers have no live preview, so it is never among their outputs."""
    return [output.url for output in public.outputs if output.content_type == VIDEO_MP4]


def video_url(public: TaskPublic) -> str | None:
    return next(iter(video_urls(public)), None)


def nsfw_flags(task: Task) -> list[bool]:
    """One flag per output that a safety checker looked at; outputs nobody checked are left out."""
    if task.state is not TaskStatus.SUCCEEDED:
        return []
    return [bool(meta["nsfw"]) for meta in (task.outputs or {}).values() if meta.get("nsfw") is not None]


def epoch_ms(moment: datetime | None) -> int | None:
    """Unix milliseconds of a naive-UTC time from the store."""
    return round(moment.replace(tzinfo=UTC).timestamp() * 1000) if moment else None


def iso(moment: datetime | None) -> str | None:
    return moment.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def ms_between(start: datetime | None, end: datetime | None) -> int | None:
    return round((end - start).total_seconds() * 1000) if start and end else None
