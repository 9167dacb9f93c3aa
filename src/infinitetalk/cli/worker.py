"""`infinitetalk worker`: the GPU worker processes of a fleet (one per GPU); `infinitetalk workers`: who is alive."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import typer

from infinitetalk.cli.settings import load_settings, shown_default, where

log = logging.getLogger("infinitetalk.worker")


def _gpu_list(gpus: str) -> list[str | None]:
    """'all' -> every CUDA device (none: one CPU worker); '0,1,2' -> those ids."""
    if gpus.strip().lower() != "all":
        ids = [part.strip() for part in gpus.split(",") if part.strip()]
        if not ids:
            raise typer.BadParameter("give GPU ids like 0,1,2, or all", param_hint="--gpus")
        return list(ids)
    try:
        import torch

        count = torch.cuda.device_count()
    except ImportError:  # no torch: the preview engine on the CPU
        count = 0
    return [str(index) for index in range(count)] or [None]


def worker(
    gpus: str = typer.Option("all", "--gpus", help="GPUs to use, one worker process each: all, or ids like 0,1,2."),
    engine: str = typer.Option(None, "--engine", help="preview, neural or auto" + shown_default("auto")),
    weights: Path = typer.Option(None, "--weights", help="Neural engine weights folder."),
    broker: str = typer.Option(None, "--broker", help="Redis URL of the task queue" + shown_default("INFINITETALK_BROKER_URL")),
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL of the shared task store."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (shared with the API on one machine)."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run tasks from the queue: one process per GPU, each loading its engine once, one task at a time.

    SIGTERM stops each process at its task's next step; the task goes back to the queue for another worker.
    """
    settings = load_settings(engine=engine, weights_dir=weights, broker_url=broker, database_url=database,
                             data_dir=data_dir)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.broker_url:
        typer.echo("error: a worker needs the task queue: --broker redis://HOST:6379/0 or INFINITETALK_BROKER_URL",
                   err=True)
        raise typer.Exit(2)
    devices = _gpu_list(gpus)
    if len(devices) == 1:
        _serve_one(settings, devices[0])
        return
    raise typer.Exit(_supervise(devices, settings, log_level))


def _serve_one(settings, gpu: str | None) -> None:  # noqa: ANN001 - Settings
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before the engine imports torch and sees the devices
    from infinitetalk.tasks.runtime import WorkerRuntime

    log.info("worker on GPU %s; %s", gpu if gpu is not None else "none (CPU)", where(settings))
    WorkerRuntime(settings, gpu=gpu).serve()


def _supervise(devices: list[str | None], settings, log_level: str) -> int:  # noqa: ANN001 - Settings
    """One child process per GPU, with this command's settings; SIGTERM/SIGINT are passed on to all."""
    env = {**os.environ, **{f"INFINITETALK_{name.upper()}": str(value) for name, value in (
        ("broker_url", settings.broker_url), ("database_url", settings.database_url), ("data_dir", settings.data_dir),
        ("engine", settings.engine), ("weights_dir", settings.weights_dir)) if value is not None}}
    # stderr=sys.stderr: this process's fd 2 is /dev/null (main._silence_native_stderr); the children's logs go
    # where ours do
    children = [subprocess.Popen([sys.executable, "-m", "infinitetalk.cli", "worker", "--gpus", str(device),
                                  "--log-level", log_level], env=env, stderr=sys.stderr)
                for device in devices]

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(child.wait() for child in children)


def workers(
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL of the shared task store."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (for the default SQLite store)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per worker."),
) -> None:
    """Live worker processes: host, GPU, engine, current task, last heartbeat."""
    import json

    from rich.console import Console
    from rich.table import Table

    from infinitetalk.tasks.db import open_database
    from infinitetalk.tasks.fleet import live_workers

    settings = load_settings(database_url=database, data_dir=data_dir)
    typer.echo(where(settings), err=True)
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
    table = Table("worker", "host", "GPU", "engine", "task", "last heartbeat (UTC)")
    for row in rows:
        table.add_row(row.id, row.host, row.gpu or "-", row.engine, row.task_id or "idle",
                      row.heartbeat_at.strftime("%H:%M:%S"))
    Console().print(table if rows else "no live workers (start one with `infinitetalk worker`)")
