"""The FastAPI app factory. ``create_app(settings)`` is cheap; the runtime (store, engine, workers)
starts in the lifespan, so importing or building the app never touches the disk or loads a model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool

from infinitetalk import __version__
from infinitetalk.api import compat
from infinitetalk.api.body_limit import BodyLimit
from infinitetalk.api.compat import openapi as compat_openapi
from infinitetalk.api.docs import install_docs
from infinitetalk.api.errors import install_error_handlers
from infinitetalk.api.page_headers import PageHeaders
from infinitetalk.api.playground import install_playground
from infinitetalk.api.routes import files, health, models, tasks
from infinitetalk.config import Settings
from infinitetalk.engines.base import Engine
from infinitetalk.runtime.server import Runtime
from infinitetalk.schema import limits
from infinitetalk.tasks.schemas import ErrorBody, EstimateRequest, TaskCreate

DESCRIPTION = """Portrait (or video) + speech -> lip-synced talking video, as asynchronous tasks.

Submit with `POST /v1/tasks`, then poll `GET /v1/tasks/{id}`, stream `GET /v1/tasks/{id}/events`,
or give a `callback_url`. Send your key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
Every error is `{"error": {"code", "message", "field"?}}`."""


def _install_openapi(app: FastAPI) -> None:
    """Add the models that routes read by hand (JSON or multipart bodies) to the schema's components."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (TaskCreate, EstimateRequest, ErrorBody):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in model_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = model_schema
        components.update(compat_openapi.components())
        compat_openapi.expand_paths(schema)
        _drop_fastapi_422(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_fastapi_422(schema: dict) -> None:
    """FastAPI documents a 422 for every route with parameters; ours answer a bad parameter with 400 (natively
    and in each provider's shape), so that 422 would be a promise nobody keeps."""
    fastapi_422 = "#/components/schemas/HTTPValidationError"
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            answer = operation.get("responses", {}).get("422", {}) if isinstance(operation, dict) else {}
            if answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref") == fastapi_422:
                del operation["responses"]["422"]
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await run_in_threadpool(Runtime, settings, engine=engine, webhook_formats=compat.WEBHOOK_FORMATS)
        runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(title="infinitetalk", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # served by install_docs, from local files
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=limits.MAX_REQUEST_BYTES)
    app.add_middleware(PageHeaders)  # nosniff on every answer; pages not framed by other sites
    app.include_router(tasks.router)
    app.include_router(files.router)
    app.include_router(models.router)
    app.include_router(health.router)
    app.include_router(compat.router)  # the hosted providers' APIs (infinitetalk.api.compat)
    _install_openapi(app)
    install_docs(app)
    install_playground(app)  # GET / and its files
    return app
