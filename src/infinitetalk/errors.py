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
    │   └── NoFaceDetected            400 nothing to animate
    ├── FetchFailed                   400 a URL could not be downloaded
    ├── Canceled                      499 the caller asked us to stop
    ├── EngineError                   500 our failure while generating
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
