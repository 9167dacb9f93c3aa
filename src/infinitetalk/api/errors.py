"""One mapping from errors to HTTP for the whole app, and one envelope: {"error": {code, message, field?}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from infinitetalk.errors import InfiniteTalkError, InvalidRequest, ServiceBusy

log = logging.getLogger("infinitetalk.api")

#: The error responses every route may give, for the OpenAPI schema.
ERROR_RESPONSES: dict[int | str, dict] = {
    400: {"description": "Invalid request: `error.field` names the input, `error.message` says why."},
    401: {"description": "Missing or invalid API key."},
    402: {"description": "The key's balance does not cover the price."},
    403: {"description": "The key may not use this model or route, or (open mode, no key) a page of another "
                         "origin sent the request."},
    404: {"description": "No such task (or another key's)."},
    409: {"description": "Idempotency-Key reused with another body, or the task already ended."},
    413: {"description": "An input is over its size or length cap."},
    415: {"description": "A JSON body sent without `Content-Type: application/json`."},
    421: {"description": "Open mode, no key: the request named a host that is not this server's."},
    429: {"description": "Rate, concurrency or quota limit; see Retry-After."},
    503: {"description": "The server is busy; nothing was changed. Try again after Retry-After seconds."},
}


def _body(code: str, message: str, field: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


async def _ours(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InfiniteTalkError)
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    if exc.http_status >= 500:
        log.error("%s: %s", exc.code, exc.message)
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=headers)


async def _validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"error": InvalidRequest.from_errors(exc.errors()).to_dict()}, status_code=400)


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "input_too_large"}
    return JSONResponse(_body(codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail)),
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


def store_error(exc: SQLAlchemyError) -> ServiceBusy:
    """A database error as the client sees it: busy, try again; the statement and its values stay in our log."""
    log.warning("task store error: %s", exc.__class__.__name__, exc_info=exc)
    return ServiceBusy()


async def _store(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SQLAlchemyError)
    return await _ours(request, store_error(exc))


async def _gone(request: Request, _exc: Exception) -> JSONResponse:
    # the client hung up mid-body (or was cut off by a body timeout): nobody reads this answer, and it is
    # the client's doing, so it is not an error of ours to log with a traceback
    log.info("client went away while sending %s %s", request.method, request.url.path)
    return JSONResponse(_body("client_disconnected", "the request body did not arrive whole"), status_code=400)


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(_body("internal_error", "something went wrong on our side; it was logged"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(InfiniteTalkError, _ours)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(SQLAlchemyError, _store)
    app.add_exception_handler(ClientDisconnect, _gone)
    app.add_exception_handler(Exception, _unexpected)
