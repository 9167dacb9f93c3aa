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


def check_open_mode(settings: Settings, *, has_keys: bool) -> str | None:
    """A warning to print, or raise typer.Exit when serving open (no keys) beyond loopback without --insecure."""
    if has_keys:
        return None
    if is_loopback(settings.host):
        return f"no API keys: serving OPEN on {settings.host} (this machine only); `infinitetalk keys create` adds one"
    if settings.insecure:
        return f"no API keys and --insecure: anyone who can reach {settings.host}:{settings.port} can use this server"
    typer.echo(
        f"refusing to serve on {settings.host} without API keys: create one with `infinitetalk keys create NAME`, "
        "bind to 127.0.0.1, or pass --insecure", err=True,
    )
    raise typer.Exit(2)


def serve(
    host: str = typer.Option(None, help="Address to bind [default: 127.0.0.1]."),
    port: int = typer.Option(None, help="Port [default: 8000]."),
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL, e.g. postgresql+psycopg://... "
                                                          "[default: SQLite in the data dir]."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Tasks, uploads and outputs [default: ./infinitetalk-data]."),
    workers: int = typer.Option(None, "--workers", help="Render threads [default: 1]."),
    engine: str = typer.Option(None, "--engine", help="preview, neural or auto."),
    public_url: str = typer.Option(None, "--public-url", help="Base URL clients use, for output/webhook links."),
    insecure: bool = typer.Option(False, "--insecure", help="Serve without API keys on a non-loopback address."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Start the HTTP API with its task store, workers and output storage."""
    import uvicorn

    from infinitetalk.api import create_app
    from infinitetalk.tasks import keys
    from infinitetalk.tasks.db import open_database

    flags = {"host": host, "port": port, "database_url": database, "data_dir": data_dir, "workers": workers,
             "engine": engine, "public_url": public_url, "insecure": insecure or None}
    settings = Settings(**{name: value for name, value in flags.items() if value is not None})
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db, sessions = open_database(settings)
    with sessions() as session:
        has_keys = keys.any_active(session)
    db.dispose()
    warning = check_open_mode(settings, has_keys=has_keys)
    if warning:
        log.warning(warning)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level)
