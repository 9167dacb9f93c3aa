"""The one exception family of infinitetalk.

Every error a user can cause or meet carries a stable machine ``code`` (for programs and
the HTTP layer), a ``message`` that says what was wrong and how to fix it (for people),
and, when one input is at fault, the ``field`` it came from. The HTTP layer maps the class
to a status code in one place; the CLI prints ``code: message`` and exits non-zero.

    InfiniteTalkError                 500 internal_error
    ├── InvalidRequest                400 the caller sent something we cannot use
    │   ├── InputTooLarge             413 over a byte/duration/pixel cap
    │   ├── UnsupportedMediaType      415 a body whose Content-Type we do not read (JSON without a JSON type)
    │   ├── UrlNotAllowed             400 URL refused by the address guard
    │   ├── NoFaceDetected            400 nothing to animate
    │   └── WontFit                   400 the job or the start-up needs more GPU memory than the card has
    ├── FetchFailed                   400 a URL could not be downloaded
    ├── Unauthorized                  401 no key, or a key we do not know / revoked
    ├── InsufficientBalance           402 the price cannot be reserved from the key's balance
    ├── Forbidden                     403 the key may not use this model or route; a key-less request from a
    │                                     web page (open mode)
    ├── NotFound                      404 no such task (or another key's)
    ├── Conflict                      409 idempotency key reused with another body; task already finished
    ├── Gone                          410 an output that has expired
    ├── HostNotAllowed                421 a key-less request (open mode) for a Host that is not one of ours
    ├── TooManyRequests               429 rate or concurrency limit; carries retry_after seconds
    ├── Canceled                      499 the caller asked us to stop
    ├── EngineError                   500 our failure while generating
    │   └── WorkerLost                500 the task's worker stopped answering on every run
    ├── SensitiveContent              500 the safety checker flagged the output (the caller's inputs made it)
    ├── TaskTimeout                   504 a task ran past task_timeout_s
    ├── Unreachable                   500 a part a process needs (database, broker, bucket) did not answer at
    │                                     start-up
    ├── ServiceBusy                   503 the task store is busy or unreachable; carries retry_after seconds
    ├── StorageUnavailable            503 the file storage (S3) did not answer; Retry-After
    └── StorageFull                   503 our disk refused a write; Retry-After says when to try again
"""

from __future__ import annotations


class InfiniteTalkError(Exception):
    code: str = "internal_error"
    http_status: int = 500
    #: Whether the caller is at fault (no refund for billing; a 4xx for HTTP).
    caller_fault: bool = False

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        return self.message


class InvalidRequest(InfiniteTalkError):
    code = "invalid_request"
    http_status = 400
    caller_fault = True

    #: Where pydantic (and FastAPI) say an error sits, which the caller did not name: not part of the field.
    _PLACES = ("body", "query", "path", "header")

    @classmethod
    def from_errors(cls, errors: list) -> InvalidRequest:
        """pydantic's (or FastAPI's) validation errors -> one error naming the first field at fault."""
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p not in cls._PLACES) or None
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return cls(f"{field}: {message}" if field else message, field=field)


class InputTooLarge(InvalidRequest):
    code = "input_too_large"
    http_status = 413


class UnsupportedMediaType(InvalidRequest):
    code = "unsupported_media_type"
    http_status = 415


class UrlNotAllowed(InvalidRequest):
    code = "url_not_allowed"


class NoFaceDetected(InvalidRequest):
    code = "no_face_detected"


class FetchFailed(InfiniteTalkError):
    """A URL did not answer, or answered with an error. The caller's URL, so caller's fault."""

    code = "url_fetch_failed"
    http_status = 400
    caller_fault = True


class Canceled(InfiniteTalkError):
    code = "canceled"
    http_status = 499


class EngineError(InfiniteTalkError):
    code = "engine_error"


class StorageFull(InfiniteTalkError):
    """Our disk is full (or a file-size limit was hit) while writing an input or an output.

    503 rather than 507: the condition is ours and passes (the retention sweep frees space, an operator
    adds some), and HTTP clients and provider SDKs retry a 503 after ``retry_after`` seconds.
    """

    code = "storage_full"
    http_status = 503
    retry_after = 60

    def __init__(self, message: str = "the server has no room to store this request's files right now; "
                 "try again in a minute", *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class Unauthorized(InfiniteTalkError):
    code = "unauthorized"
    http_status = 401
    caller_fault = True


class InsufficientBalance(InfiniteTalkError):
    code = "insufficient_balance"
    http_status = 402
    caller_fault = True


class Forbidden(InfiniteTalkError):
    code = "forbidden"
    http_status = 403
    caller_fault = True


class NotFound(InfiniteTalkError):
    code = "not_found"
    http_status = 404
    caller_fault = True


class Conflict(InfiniteTalkError):
    code = "conflict"
    http_status = 409
    caller_fault = True


class Gone(InfiniteTalkError):
    code = "gone"
    http_status = 410
    caller_fault = True


class HostNotAllowed(InfiniteTalkError):
    """421 Misdirected Request: the name the request was sent to is not one this server answers to
    (DNS rebinding points a foreign name at this machine)."""

    code = "host_not_allowed"
    http_status = 421
    caller_fault = True


class ServiceBusy(InfiniteTalkError):
    """The task store did not answer in time (another writer holds it, or it is down). Nothing was changed."""

    code = "service_busy"
    http_status = 503

    def __init__(self, message: str = "the server's task store is busy; nothing was changed, try again shortly",
                 *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class TooManyRequests(InfiniteTalkError):
    code = "rate_limited"
    http_status = 429
    caller_fault = True

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class StorageUnavailable(InfiniteTalkError):
    """The file storage (an S3 bucket) did not answer or refused us. Ours and passing: a 503 with Retry-After.

    The message is for the caller and names no bucket, key or endpoint; the details go to the log.
    """

    code = "storage_unavailable"
    http_status = 503
    retry_after = 30

    def __init__(self, message: str = "the server's file storage is not answering; nothing was changed, try again "
                 "in a minute") -> None:
        super().__init__(message)


class TaskTimeout(InfiniteTalkError):
    """A task ran past ``task_timeout_s``: our limit, so not the caller's fault (refunded)."""

    code = "timeout"
    http_status = 504


class WorkerLost(EngineError):
    code = "worker_lost"


class SensitiveContent(InfiniteTalkError):
    """The checker flagged the output; the lifecycle maps the code to the failure code SensitiveContent."""

    code = "sensitive_content"
    caller_fault = True  # the caller's inputs made it: no refund, as the providers do


class Unreachable(InfiniteTalkError):
    """A part this process needs did not answer within the start-up wait."""

    code = "unreachable"


class WontFit(InvalidRequest):
    """The memory plan predicts more GPU memory than the card has, for a job or for the engine's settings.

    Raised before any weights are read or any step runs, naming the setting that would fit.
    """

    code = "gpu_memory_too_small"
