"""EachLabs-compatible routes: ``POST /v1/prediction/``, ``GET /v1/prediction/{id}``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from infinitetalk.api.compat import common, openapi
from infinitetalk.api.compat.eachlabs.protocol import (
    ERRORS,
    MODELS,
    NAMES,
    Created,
    CreatePrediction,
    CreatePredictionRequest,
    EachLabsLimits,
    Prediction,
    error_body,
    prediction,
)
from infinitetalk.api.deps import BaseUrlDep, KeyDep, RuntimeDep
from infinitetalk.errors import InfiniteTalkError, InvalidRequest, NotFound


def _error_body(exc: InfiniteTalkError, status: int) -> dict:
    return error_body(exc.message, exc.code)


render_error = common.error_renderer(_error_body)


router = APIRouter(prefix="/v1/prediction", tags=["compat: EachLabs"],
                   route_class=common.translating_route(render_error))


@router.post("/", response_model=None, openapi_extra=openapi.json_body("eachlabs", CreatePredictionRequest),
             responses=openapi.answers("eachlabs", {200: ("Created: poll GET /v1/prediction/{predictionID}", Created),
                                                    **ERRORS}))
@router.post("", include_in_schema=False)
async def create(request: Request, runtime: RuntimeDep, key: KeyDep, base_url: BaseUrlDep) -> dict:
    """Create a prediction; answers its ``predictionID``."""
    body = await common.read_body(request, CreatePrediction)
    if body.model not in MODELS:
        raise NotFound(f"model {body.model} not found; available: {', '.join(MODELS)}")
    try:
        given = MODELS[body.model].model_validate(body.input)
    except ValidationError as exc:
        error = InvalidRequest.from_errors(exc.errors())
        common.rename_fields(error, {error.field or "": f"input.{error.field}"})
        raise error from None
    payload = given.to_payload()
    if body.webhook_url:
        payload["callback_url"] = body.webhook_url
    task = await common.submit(runtime, EachLabsLimits().apply(key), payload, base_url, names=NAMES,
                               callback_format="eachlabs")
    return {"status": "success", "message": "Prediction created successfully", "predictionID": task.id}


@router.get("/{prediction_id}", response_model=None,
            responses=openapi.answers("eachlabs", {200: ("The prediction as it is now", Prediction), **ERRORS}))
async def get_prediction(prediction_id: str, runtime: RuntimeDep, key: KeyDep) -> dict:
    """status processing | success | error; output (the video URL); metrics.predict_time in seconds."""
    task = await common.get(runtime, key, prediction_id)
    return prediction(task, common.view(runtime, task))
