"""APIXO-compatible routes: ``POST /generateTask/{model}``, ``GET /statusTask/{model}?taskId=``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from infinitetalk.api.compat import common, openapi
from infinitetalk.api.compat.apixo.protocol import (
    ERRORS,
    MESSAGES,
    MODELS,
    NAMES,
    GenerateTask,
    GenerateTaskRequest,
    StatusAnswer,
    SubmitAnswer,
    envelope,
    task_data,
)
from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.errors import InfiniteTalkError, NotFound


def _error_body(exc: InfiniteTalkError, status: int) -> dict:
    return envelope(None, code=status, message=exc.message)


render_error = common.error_renderer(_error_body)


router = APIRouter(tags=["compat: APIXO"], route_class=common.translating_route(render_error))


def _model(model: str) -> str:
    if model not in MODELS:
        raise NotFound(f"model {model} not found; available: {', '.join(MODELS)}")
    return MODELS[model]


@router.post("/generateTask/{model}", response_model=None,
             openapi_extra=openapi.merge(openapi.json_body("apixo", GenerateTaskRequest),
                                         openapi.fixed_path(model=list(MODELS))),
             responses=openapi.answers("apixo", {200: ("Accepted: `data.taskId` names the task", SubmitAnswer),
                                                 **ERRORS}))
async def generate_task(model: str, request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """Submit a task; answers ``{code, message, data: {taskId}}``."""
    mode = _model(model)
    body = await common.read_body(request, GenerateTask)
    task = await common.submit(runtime, key, body.to_payload(mode), base_url, names=NAMES, messages=MESSAGES,
                               callback_format="apixo")
    return envelope({"taskId": task.id})


@router.get("/statusTask/{model}", response_model=None, openapi_extra=openapi.fixed_path(model=list(MODELS)),
            responses=openapi.answers("apixo", {200: ("The task's state, and its result or failure", StatusAnswer),
                                                **ERRORS}))
async def status_task(model: str, runtime: RuntimeDep, key: KeyDep, task_id: Annotated[str, Query(alias="taskId")]
                      ) -> dict:
    """Poll a task: state pending | processing | success | failed, resultJson once it succeeded."""
    _model(model)
    task = await common.get(runtime, key, task_id)
    return envelope(task_data(task, common.view(runtime, task), model))


# the callback carries the same {code, message, data} as the status response
