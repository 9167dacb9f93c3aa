"""GET /v1/models: what this server offers, so a client need not hard-code modes, sizes or prices."""

from __future__ import annotations

from fastapi import APIRouter

from infinitetalk.api.deps import KeyDep, RuntimeDep
from infinitetalk.api.errors import ERROR_RESPONSES
from infinitetalk.tasks.catalog import catalog
from infinitetalk.tasks.schemas import ModelList

router = APIRouter(prefix="/v1", tags=["models"], responses=ERROR_RESPONSES)


@router.get("/models", response_model=ModelList)
def list_models(runtime: RuntimeDep, key: KeyDep) -> ModelList:
    """The models your key may use, with their modes, resolutions (output size, price per second) and limits."""
    return catalog(runtime.settings, engine=runtime.engine_name, key=key)
