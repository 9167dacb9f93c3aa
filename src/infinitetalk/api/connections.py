"""The connection limits and timeouts uvicorn does not have, as its HTTP/1.1 protocol with three timers.

uvicorn closes a connection that sits idle between requests (``timeout_keep_alive``) and answers 503 past
``limit_concurrency``, but it gives a client forever to send a request's headers, forever to send its body
and forever to read the answer, and a connection that never sends a byte counts against the limit like a
busy one. 1,100 such connections once used up the file descriptors and every /healthz failed. Here:

- a client has ``header_timeout_s`` to send a whole request head (from connecting, or from the end of the
  previous answer), however it trickles the bytes in;
- a request body, or an answer the client does not read, that makes no progress for ``idle_timeout_s`` is
  dropped;
- past ``max_connections`` open connections, each new one closes the connection that has waited longest for
  its request head, so a flood of silent connections cannot lock real clients (or /healthz) out. When every
  connection is busy, uvicorn's own limit answers 503.

It also refuses what h11 lets through: a request with both ``Content-Length`` and ``Transfer-Encoding``. h11
frames such a body as chunked and keeps the connection, so bytes a proxy in front counted as this body's
(Content-Length) are served here as a request of their own, one the proxy never saw (request smuggling).
RFC 9112 6.1 wants such a connection closed; we answer 400 and close it before the app sees the request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol

from infinitetalk.config import Settings

log = logging.getLogger("infinitetalk.serve")


AMBIGUOUS_FRAMING = ("the request has both Content-Length and Transfer-Encoding headers, which frame its body "
                     "two ways; send one of them")


class UnambiguousConnection(h11.Connection):
    """h11's server connection, refusing a request head whose body could be framed two ways."""

    #: why this connection refused a request, for the 400's body (uvicorn's own is the same for every error)
    refused: str | None = None

    def next_event(self):  # type: ignore[no-untyped-def] - h11's own signature
        event = super().next_event()
        if isinstance(event, h11.Request):
            names = {name for name, _ in event.headers}
            if b"content-length" in names and b"transfer-encoding" in names:
                self.refused = AMBIGUOUS_FRAMING
                raise h11.RemoteProtocolError(AMBIGUOUS_FRAMING, error_status_hint=400)
        return event


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus the timers above. Subclassed per server by ``guarded_protocol``."""

    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    max_connections: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        self.conn = UnambiguousConnection(h11.SERVER, DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if limit is None else limit)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        #: loop time since when the connection waits for a request head; None while one is being served
        self.awaiting_head_since: float | None = None

    # --- the asyncio.Protocol hooks ---
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.max_connections and self._live_connections() > self.max_connections:
            self._make_room()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request head arrived
            self.awaiting_head_since = None
            self._cancel("head")
        if self._reading_body():
            self._arm("body", self.idle_timeout_s, self._body_stalled)  # bytes came: the body moves
        else:
            self._cancel("body")

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()  # may start a pipelined request, which handle_events notes
        if self.cycle is cycle and not self.transport.is_closing():
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers "Invalid HTTP request received." to every protocol error (and closes); ours says which
        super().send_400_response(getattr(self.conn, "refused", None) or msg)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm("write", self.idle_timeout_s, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel("write")

    # --- the timers ---
    def _await_head(self) -> None:
        self.awaiting_head_since = self.loop.time()
        self._arm("head", self.header_timeout_s, self._head_overdue)

    def _reading_body(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not cycle.disconnected

    def _head_overdue(self) -> None:
        self._timers.pop("head", None)
        self._drop(f"no request head within {self.header_timeout_s:g} s")

    def _body_stalled(self) -> None:
        self._timers.pop("body", None)
        if not self._reading_body():
            return
        if self.flow.read_paused:  # we stopped reading (the app is behind), not the client
            self._arm("body", self.idle_timeout_s, self._body_stalled)
            return
        self._drop(f"request body stalled for {self.idle_timeout_s:g} s")

    def _write_stalled(self) -> None:
        self._timers.pop("write", None)
        if self.flow.write_paused:
            self._drop(f"answer unread for {self.idle_timeout_s:g} s")

    def _live_connections(self) -> int:
        return sum(not connection.transport.is_closing() for connection in self.connections)

    def _make_room(self) -> None:
        waiting = [connection for connection in self.connections
                   if connection is not self and isinstance(connection, GuardedH11Protocol)
                   and connection.awaiting_head_since is not None and not connection.transport.is_closing()]
        if waiting:
            min(waiting, key=lambda connection: connection.awaiting_head_since)._drop(
                f"{self.max_connections} connections open: the longest-silent one makes room")

    def _drop(self, why: str) -> None:
        if self.transport.is_closing():
            return
        log.debug("closing connection from %s: %s", self.client, why)
        self.transport.close()

    def _arm(self, name: str, delay: float, callback: Any) -> None:
        self._cancel(name)
        self._timers[name] = self.loop.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()


def guarded_protocol(settings: Settings, *, max_connections: int) -> type[GuardedH11Protocol]:
    """The protocol class for one server (uvicorn builds one instance per connection, from its class)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {
        "header_timeout_s": settings.header_timeout_s,
        "idle_timeout_s": settings.idle_timeout_s,
        "max_connections": max_connections,
    })
