"""Headers every answer carries, so that a browser never reads one as something else or shows a page of ours
inside another site's frame (where a click on it could act with the key the playground keeps):

- ``X-Content-Type-Options: nosniff`` on every answer: a JSON error or an uploaded file is never run as a
  script or shown as HTML because its bytes look like one;
- on HTML pages, ``X-Frame-Options: DENY`` (older browsers) and, where the page set no policy of its own
  (the playground and the docs set theirs), ``Content-Security-Policy: frame-ancestors 'none'``.

Pure ASGI: it edits the head of the answer and passes the body through untouched, so streams (events, video)
still go out as they are made.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRAME_POLICY = "frame-ancestors 'none'"


class PageHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Content-Security-Policy", FRAME_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
