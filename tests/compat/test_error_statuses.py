"""Each provider route answers our errors with the status its provider documents, in its own body shape: a
table of every error family member against every provider, so a change to the shared status map shows up here."""

from __future__ import annotations

import importlib
import json

import pytest

from infinitetalk.errors import (
    Canceled,
    Conflict,
    FetchFailed,
    Forbidden,
    InfiniteTalkError,
    InputTooLarge,
    InsufficientBalance,
    InvalidRequest,
    NotFound,
    ServiceBusy,
    StorageFull,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)

# each package's __init__ re-exports its APIRouter under the module's own name, hence import_module
PROVIDERS = {name: importlib.import_module(f"infinitetalk.api.compat.{name}.router")
             for name in ("apixo", "eachlabs", "runpod", "segmind", "wavespeed")}

#: (our error, the status every provider answers it with); Segmind's insufficient credits is its 406.
CASES = [
    (InvalidRequest("seed: must be an integer", field="seed"), 400),
    (InputTooLarge("audio: files up to 128 MiB are accepted", field="audio"), 400),
    (UnsupportedMediaType("send the JSON body with 'Content-Type: application/json'"), 415),
    (FetchFailed("image: the URL answered 404"), 400),
    (Unauthorized("missing API key"), 401),
    (InsufficientBalance("the key's balance does not cover the price"), {"segmind": 406}),
    (Forbidden("this key may not use the model"), 403),
    (NotFound("no such task"), 404),
    (Conflict("this Idempotency-Key was used with a different request body"), 400),
    (Canceled("the request was canceled"), 400),
    (TooManyRequests("too many requests", retry_after=7), 429),
    (ServiceBusy("the task store is busy", retry_after=3), 503),
    (StorageFull("the disk is full"), 503),
    (InfiniteTalkError("something broke"), 500),
]


def _expected(status: int | dict, provider: str) -> int:
    return status.get(provider, 402) if isinstance(status, dict) else status


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("error", "status"), CASES, ids=[type(error).__name__ for error, _ in CASES])
def test_each_error_gets_the_providers_documented_status(provider: str, error: InfiniteTalkError,
                                                          status: int | dict) -> None:
    response = PROVIDERS[provider].render_error(error)
    assert response.status_code == _expected(status, provider)
    retry_after = getattr(error, "retry_after", None)
    assert response.headers.get("retry-after") == (str(retry_after) if retry_after is not None else None)
    assert error.message in response.body.decode()


def test_each_provider_keeps_its_own_body_shape() -> None:
    error = InputTooLarge("audio: files up to 128 MiB are accepted", field="audio")
    bodies = {name: json.loads(module.render_error(error).body) for name, module in PROVIDERS.items()}
    assert bodies == {
        "apixo": {"code": 400, "message": error.message, "data": None},
        "eachlabs": {"status": "error", "message": error.message, "details": error.code},
        "runpod": {"status": "FAILED", "error": error.message},
        "segmind": {"error": error.message},
        "wavespeed": {"code": 400, "message": error.message, "data": None},
    }
    # RunPod documents {status: FAILED, error} for a 400 only; its other errors carry just the error
    not_found = PROVIDERS["runpod"].render_error(NotFound("no such job"))
    assert json.loads(not_found.body) == {"error": "no such job"}
