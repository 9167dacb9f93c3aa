"""``infinitetalk workers``: the live worker processes of a store, as plain columns a pipe keeps whole."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from infinitetalk.cli.settings import load_settings, where


def workers(
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL of the shared task store."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (for the default SQLite store)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per worker."),
) -> None:
    """Live worker processes: host, GPU, engine, current task, last heartbeat."""
    from infinitetalk.runtime.fleet import live_workers
    from infinitetalk.tasks.db import open_database

    settings = load_settings(database_url=database, data_dir=data_dir)
    typer.echo(where(settings, store_only=True), err=True)
    db, sessions = open_database(settings)
    try:
        with sessions() as session:
            rows = live_workers(session)
    finally:
        db.dispose()
    if as_json:
        for row in rows:
            typer.echo(json.dumps({"id": row.id, "host": row.host, "pid": row.pid, "gpu": row.gpu, "engine": row.engine,
                                   "task": row.task_id, "heartbeat_at": row.heartbeat_at.isoformat() + "Z"}))
        return
    if not rows:
        typer.echo("no live workers (start one with `infinitetalk worker`)")
        return
    # aligned columns, never cut: an id is copied from here into a grep or a kill, often through a pipe
    table = [("WORKER", "HOST", "GPU", "ENGINE", "TASK", "HEARTBEAT (UTC)")] + [
        (row.id, row.host, row.gpu or "-", row.engine, row.task_id or "idle", row.heartbeat_at.strftime("%H:%M:%S"))
        for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]) - 1)]
    for line in table:
        typer.echo("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]]))
