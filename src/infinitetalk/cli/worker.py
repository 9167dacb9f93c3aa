"""`infinitetalk worker`: the GPU worker processes of a fleet (one per GPU, or one group of processes per
``--gpus-per-job`` GPUs sharing each job; started and watched by ``runtime.supervisor``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import typer

from infinitetalk.cli.errors import EXIT_CANNOT_START, fail
from infinitetalk.cli.settings import load_settings, shown_default, where
from infinitetalk.errors import InvalidRequest
from infinitetalk.runtime import launch, supervisor

log = logging.getLogger("infinitetalk.worker")


def _gpu_list(gpus: str, settings) -> list[str | None]:  # noqa: ANN001 - Settings
    """'all' -> every CUDA device (none: one CPU worker); '0-3' or '0,1,2' -> those ids. The neural engine's
    ids must be GPUs this machine has (told GPU 1 on a machine without one, a worker would quietly share GPU 0,
    or render on the CPU); the preview and instant engines render on the CPU, where the ids only name (and
    count) the worker processes."""
    if gpus.strip().lower() != "all":
        try:
            ids = launch.parse_gpu_ids(gpus)
        except InvalidRequest as exc:
            raise typer.BadParameter(f"{exc.message}, or all", param_hint="--gpus") from None
        if os.environ.get(supervisor.GPUS_CHECKED) != "1":  # else the supervisor checked them for its children
            if _neural(settings):
                try:
                    launch.check_gpu_ids(ids)
                except InvalidRequest as exc:
                    fail(exc, exit_code=EXIT_CANNOT_START)
            else:
                log.info("the %s engine renders on the CPU: --gpus %s starts %d worker process(es), each named "
                         "after its id", "preview" if settings.engine == "auto" else settings.engine, gpus, len(ids))
        return list(ids)
    try:
        import torch

        count = torch.cuda.device_count()
    except ImportError:  # no torch: the preview engine on the CPU
        count = 0
    return [str(index) for index in range(count)] or [None]


def worker(
    gpus: str = typer.Option("all", "--gpus", help="GPUs to use: all, or ids like 0-7 or 0,1,2."),
    gpus_per_job: int = typer.Option(1, "--gpus-per-job", min=1, help="GPUs that share each job (neural engine, "
                                     "one process per GPU): --gpus 0-7 --gpus-per-job 8 runs one job at a time on "
                                     "all eight; 4 runs two jobs at a time, on four GPUs each."),
    engine: str = typer.Option(None, "--engine", help="preview, neural or auto" + shown_default("auto")),
    weights: Path = typer.Option(None, "--weights", help="Neural engine weights folder."),
    broker: str = typer.Option(None, "--broker", help="Redis URL of the task queue" + shown_default("INFINITETALK_BROKER_URL")),
    database: str = typer.Option(None, "--database", help="SQLAlchemy URL of the shared task store."),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (shared with the API on one machine)."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run tasks from the queue: one process per GPU (or per --gpus-per-job GPUs), each loading its engine once,
    one task at a time.

    SIGTERM stops each process at its task's next step; the task goes back to the queue for another worker.
    """
    settings = load_settings(engine=engine, weights_dir=weights, broker_url=broker, database_url=database,
                             data_dir=data_dir)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.broker_url:
        typer.echo("error: a worker needs the task queue: --broker redis://HOST:6379/0 or INFINITETALK_BROKER_URL",
                   err=True)
        raise typer.Exit(2)
    if launch.in_rank():  # one process of a group started below
        _serve_rank(settings)
        return
    if gpus_per_job == 1:  # (a group's shape is checked first)
        _await_weights(settings)
    devices = _gpu_list(gpus, settings)
    if gpus_per_job > 1:
        try:
            groups = supervisor.job_groups(devices, gpus_per_job, settings)
            _await_weights(settings)
            launch.check_gpus([gpu for group in groups for gpu in group])
        except InvalidRequest as exc:
            fail(exc)
    _wait_for_parts(settings)  # the database, broker and bucket, before an engine is loaded for nothing
    if gpus_per_job > 1:
        raise typer.Exit(supervisor.run_groups(settings, groups, log_level=log_level))
    if len(devices) == 1:
        _serve_one(settings, devices[0])
        return
    raise typer.Exit(supervisor.run_workers(settings, devices, log_level=log_level))


def _neural(settings) -> bool:  # noqa: ANN001 - Settings
    """Whether this worker runs the neural engine."""
    return launch.runs_neural(settings.engine, settings.weights_dir)


def missing_weights(settings) -> str | None:  # noqa: ANN001 - Settings
    """What is wrong with the neural engine's weights folder, or None (also when another engine runs)."""
    if not _neural(settings):
        return None
    fix = "download them with `infinitetalk models download`, or give --weights DIR (INFINITETALK_WEIGHTS_DIR)"
    if settings.weights_dir is None:
        return f"the neural engine needs its weights folder: {fix}"
    if not Path(settings.weights_dir).is_dir():
        return f"no weights folder at {settings.weights_dir}: {fix}"
    if not any(Path(settings.weights_dir).iterdir()):  # e.g. the folder Docker makes for a missing mount
        return f"the weights folder {settings.weights_dir} is empty: {fix}"
    return None


#: How often a worker waiting for its weights looks for them again.
WEIGHTS_RECHECK_S = 5.0


def _await_weights(settings) -> None:  # noqa: ANN001 - Settings
    """Missing weights are said once, in one line, before torch is imported; then the worker waits for them
    (a mount or a download still to come) instead of exiting, which compose and the supervisor would answer by
    starting it again, forever, with the same pages of output. SIGTERM/SIGINT while waiting: exit 0."""
    missing = missing_weights(settings)
    if not missing:
        return
    typer.echo(f"waiting for weights: {missing} (looking again every {WEIGHTS_RECHECK_S:g} s)", err=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while missing_weights(settings):
            if stop.wait(WEIGHTS_RECHECK_S):
                raise typer.Exit(0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logging.getLogger("infinitetalk.worker").info("weights found at %s", settings.weights_dir)


def _wait_for_parts(settings) -> None:  # noqa: ANN001 - Settings
    from infinitetalk.errors import Unreachable
    from infinitetalk.runtime.startup import wait_for_parts

    try:
        db, _ = wait_for_parts(settings)
    except Unreachable as exc:
        fail(exc, exit_code=EXIT_CANNOT_START)
    db.dispose()


def _serve_one(settings, gpu: str | None) -> None:  # noqa: ANN001 - Settings
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before the engine imports torch and sees the devices
    from infinitetalk.runtime.worker import WorkerRuntime

    log.info("worker on GPU %s; %s", gpu if gpu is not None else "none (CPU)", where(settings))
    WorkerRuntime(settings, gpu=gpu).serve()


def _serve_rank(settings) -> None:  # noqa: ANN001 - Settings
    """One process of a group that shares each job: rank 0 is the worker (queue, database, storage); the other
    ranks follow its jobs step by step (``runtime.launch``)."""
    from infinitetalk.engines import load_engine

    def serve(engine) -> None:  # noqa: ANN001 - an Engine
        from infinitetalk.runtime.worker import WorkerRuntime

        gpus = os.environ[launch.JOB_ENV]
        log.info("worker on GPUs %s, one job at a time on all of them; %s", gpus, where(settings))
        WorkerRuntime(settings, gpu=gpus, engine=engine).serve()

    launch.rank_session(settings, lambda: load_engine(settings, warm=False), serve)
