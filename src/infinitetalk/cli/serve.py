"""`infinitetalk serve`: the HTTP task service (API + in-process workers) on one machine."""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

import typer

from infinitetalk.config import Settings

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
    host: str = typer.Option(None, help="Address to bind [default: 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [default: 8000]."),
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL, e.g. postgresql+psycopg://... "
                                                          "[default: SQLite in the data dir]."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Tasks, uploads and outputs [default: ./infinitetalk-data]."),
    workers: int = typer.Option(None, "--workers", help="Render threads [default: 1]."),
    engine: str = typer.Option(None, "--engine", help="preview, neural or auto."),
    public_url: str = typer.Option(None, "--public-url", help="Base URL clients use, for output/webhook links."),
    open_mode: bool = typer.Option(False, "--open", help="Serve callers on this machine (loopback) without a key."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Start the HTTP API with its task store, workers and output storage."""
    import uvicorn

    from infinitetalk.api import create_app
    from infinitetalk.tasks import keys
    from infinitetalk.tasks.db import open_database

    flags = {"host": host, "port": port, "database_url": database, "data_dir": data_dir, "workers": workers,
             "engine": engine, "public_url": public_url, "open": open_mode or None}
    settings = Settings(**{name: value for name, value in flags.items() if value is not None})
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db, sessions = open_database(settings)
    with sessions() as session:
        has_keys = keys.any_active(session)
    db.dispose()
    note = access_note(settings, has_keys=has_keys)
    if note:
        log.warning(note)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level)
