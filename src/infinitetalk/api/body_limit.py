"""A cap on every request body, held while it streams: the declared Content-Length first, then the bytes
counted as they arrive. Over the cap, reading the body raises InputTooLarge inside the route, so each API
answers in its own error shape; a body nobody reads (a request refused on its headers) is never taken in.

Routes read their bodies themselves after their key is checked (no FastAPI body parameters), so an
unauthenticated request costs us its headers and nothing more.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infinitetalk.errors import InputTooLarge


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        max_bytes, seen = self.max_bytes, 0

        async def limited() -> Message:
            nonlocal seen
            if declared is not None and declared > max_bytes:
                raise _too_large(max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise _too_large(max_bytes)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # the HTTP server refuses malformed ones first
    return None


def _too_large(max_bytes: int) -> InputTooLarge:
    return InputTooLarge(f"the request body is over {max_bytes // 2**20} MiB; send large files as uploads or URLs")
