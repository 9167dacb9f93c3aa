"""`infinitetalk serve`: the HTTP task service (API + in-process workers) on one machine."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from pathlib import Path

import typer

from infinitetalk.cli.errors import EXIT_CANNOT_START, fail
from infinitetalk.cli.settings import default_of, load_settings, shown_default, where
from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError

log = logging.getLogger("infinitetalk.serve")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def access_note(settings: Settings, *, has_keys: bool) -> str | None:
    """What to tell the operator about who can call the server, or None when keys guard it as usual."""
    if settings.open:
        where = "" if is_loopback(settings.host) else f" (callers from other machines still need a key on {settings.host})"
        return f"--open: callers on this machine may use the server without a key{where}"
    if not has_keys:
        return "no API keys yet: every request will be refused until `infinitetalk keys create NAME` makes one " \
               "(or start with --open to serve this machine without keys)"
    return None


def serve(
    host: str = typer.Option(None, help="Address to bind." + shown_default(default_of("host"))),
    port: int = typer.Option(None, help="Port." + shown_default(default_of("port"))),
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL, e.g. postgresql+psycopg://..."
                                 + shown_default("SQLite in the data folder")),
    data_dir: Path = typer.Option(None, "--data-dir", help="Tasks, uploads and outputs."
                                  + shown_default(default_of("data_dir"))),
    workers: int = typer.Option(None, "--workers", help="Render threads." + shown_default(default_of("workers"))),
    engine: str = typer.Option(None, "--engine", help="preview (CPU), neural (needs weights) or auto (neural when "
                               "INFINITETALK_WEIGHTS_DIR is set)." + shown_default(default_of("engine"))),
    public_url: str = typer.Option(None, "--public-url", help="Base URL clients use, for output/webhook links."
                                   + shown_default("the request's own")),
    open_mode: bool = typer.Option(False, "--open", help="Serve callers on this machine (loopback) without a key."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Start the HTTP API with its task store, workers and output storage."""
    flags = {"host": host, "port": port, "database_url": database, "data_dir": data_dir, "workers": workers,
             "engine": engine, "public_url": public_url, "open": open_mode or None}
    settings = load_settings(**flags)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    taken = port_unavailable(settings.host, settings.port)  # before anything is migrated, loaded or said
    if taken:
        fail(InfiniteTalkError(taken, code="port_unavailable"), exit_code=EXIT_CANNOT_START)

    import uvicorn

    from infinitetalk.api import create_app
    from infinitetalk.api.connections import guarded_protocol
    from infinitetalk.errors import Unreachable
    from infinitetalk.runtime.startup import wait_for_parts
    from infinitetalk.tasks import keys

    try:
        db, sessions = wait_for_parts(settings)
    except Unreachable as exc:
        fail(exc, exit_code=EXIT_CANNOT_START)
    with sessions() as session:
        has_keys = keys.any_active(session)
    db.dispose()
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    typer.echo(f"infinitetalk serve: http://{shown}:{settings.port} (playground at /, API docs at /docs); "
               f"{where(settings)}", err=True)
    note = access_note(settings, has_keys=has_keys)
    if note:
        log.warning(note)
    max_connections, backlog = _connection_budget(settings.max_connections, settings.backlog,
                                                  _raise_open_files_limit())
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level=log_level,
        # our h11 protocol with header, body and write timeouts, and room made past max_connections
        http=guarded_protocol(settings, max_connections=max_connections),
        # the 503 for when every connection is busy (the protocol makes room only among silent ones)
        limit_concurrency=max_connections + 1, backlog=backlog,
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type] - a float works
    )


def port_unavailable(host: str, port: int) -> str | None:
    """Why this server cannot listen on ``host:port`` (taken, or not an address of this machine), or None.
    A trial bind with the options uvicorn binds with, so a taken port is found before the start does anything."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        return f"--host {host}: not an address of this machine ({exc.strerror}); give an IP address, e.g. 0.0.0.0"
    with socket.socket(family, kind, proto) as trial:
        trial.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a closed socket's TIME_WAIT is fine
        try:
            trial.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is taken by another program: stop it, or give --port " \
                       "(INFINITETALK_PORT) another number"
            return f"cannot listen on {host}:{port} ({exc.strerror}); give another --host or --port"
    return None


#: Descriptors kept for everything but client connections: the database, inputs, outputs, the encoder.
RESERVED_FDS = 256


def _raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard one (often 1024 of 524288); return the soft limit now."""
    import resource

    unlimited = 1 << 20  # what we ask for, and count on, when a limit is RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = unlimited if soft == resource.RLIM_INFINITY else soft
    target = unlimited if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # macOS, for one, refuses more than its own per-process cap
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft


def _connection_budget(wanted: int, backlog: int, open_files: int) -> tuple[int, int]:
    """(max_connections, backlog) that fit the open-files limit. asyncio accepts up to ``backlog`` queued
    connections in one go, before any of them runs (and so before the longest-silent ones are closed to make
    room; their sockets close only a loop turn or two later, while the next bursts come in): open connections
    plus three such bursts must fit, or accept() fails (EMFILE) and the server stops accepting for a second at
    a time, /healthz probes included (1,100 stalled clients on 1,024 open files)."""
    budget = max(4, open_files - RESERVED_FDS)
    burst = min(backlog, max(1, budget // 8))
    allowed = budget - 3 * burst
    if wanted > allowed:
        log.warning("open-files limit %d allows %d connections, not max_connections=%d; raise `ulimit -n`",
                    open_files, allowed, wanted)
    return min(wanted, allowed), burst
