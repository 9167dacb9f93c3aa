"""Errors of the task service, in the one family of ``infinitetalk.errors``.

    Unauthorized        401 no key, or a key we do not know / revoked
    InsufficientBalance 402 the price cannot be reserved from the key's balance
    Forbidden           403 the key may not use this model or route; a key-less request from a web page (open mode)
    NotFound            404 no such task (or another key's)
    Conflict            409 idempotency key reused with another body; task already finished
    Gone                410 an output that has expired
    HostNotAllowed      421 a key-less request (open mode) for a Host that is not one of the server's names
    TooManyRequests     429 rate or concurrency limit; carries retry_after seconds
    ServiceBusy         503 the task store is busy or unreachable; carries retry_after seconds
"""

from __future__ import annotations

from infinitetalk.errors import InfiniteTalkError


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
