"""`infinitetalk worker`: the GPU worker processes of a fleet (one per GPU, or one group of processes per
``--gpus-per-job`` GPUs sharing each job); `infinitetalk workers`: who is alive."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer

from infinitetalk.cli.errors import EXIT_CANNOT_START, fail
from infinitetalk.cli.settings import load_settings, shown_default, where
from infinitetalk.errors import InvalidRequest
from infinitetalk.runtime import launch

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
        if os.environ.get(_GPUS_CHECKED) != "1":  # else the supervisor checked them for its children
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
    if gpus_per_job == 1:  # (a group's shape is checked first, in _job_groups)
        _await_weights(settings)
    devices = _gpu_list(gpus, settings)
    if gpus_per_job > 1:
        try:
            groups = _job_groups(devices, gpus_per_job, settings)
        except InvalidRequest as exc:
            fail(exc)
    _wait_for_parts(settings)  # the database, broker and bucket, before an engine is loaded for nothing
    if gpus_per_job > 1:
        os.environ.update(_settings_env(settings))  # the ranks read their settings as the group's children do
        os.environ[_GPUS_CHECKED] = "1"
        if len(groups) == 1:
            code = launch.run_ranks(groups[0], ["worker", *_group_args(groups[0], gpus_per_job, log_level)])
            raise typer.Exit(0 if code in _STOPPED else code)  # asked to stop, it stopped: that is no failure
        raise typer.Exit(_supervise([_group_args(group, gpus_per_job, log_level) for group in groups]))
    if len(devices) == 1:
        _serve_one(settings, devices[0])
        return
    os.environ.update(_settings_env(settings))
    os.environ[_GPUS_CHECKED] = "1"
    raise typer.Exit(_supervise([["--gpus", str(device), "--log-level", log_level] for device in devices]))


#: Set for the worker processes this command starts: their GPU ids were checked here, so they do not count the
#: GPUs again (counting them in the process that renders would fix CUDA's view before CUDA_VISIBLE_DEVICES).
_GPUS_CHECKED = "INFINITETALK_GPUS_CHECKED"


def _neural(settings) -> bool:  # noqa: ANN001 - Settings
    """Whether this worker runs the neural engine (as ``engines.load_engine`` decides)."""
    return settings.engine == "neural" or (settings.engine == "auto" and settings.weights_dir is not None)


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


#: A group's exit code when SIGTERM or SIGINT stopped it (torchrun reports 128 + the signal).
_STOPPED = (128 + signal.SIGTERM, 128 + signal.SIGINT)


def _job_groups(devices: list[str | None], size: int, settings) -> list[list[str]]:  # noqa: ANN001 - Settings
    """The GPUs split into groups of ``size``, one job at a time on each; refused when that cannot work."""
    if settings.engine in ("preview", "instant") or (settings.engine == "auto" and not settings.weights_dir):
        raise InvalidRequest("--gpus-per-job shares each step of a job among GPUs: it runs the neural engine; give "
                             "--weights DIR (or leave --gpus-per-job out)", field="gpus_per_job")
    if None in devices:
        raise InvalidRequest("--gpus-per-job: this machine has no CUDA GPU", field="gpus_per_job")
    ids = [str(device) for device in devices]
    if len(ids) % size:
        divisors = ", ".join(str(n) for n in range(1, len(ids) + 1) if len(ids) % n == 0)
        raise InvalidRequest(f"--gpus-per-job {size} does not divide the {len(ids)} GPUs given; use {divisors}",
                             field="gpus_per_job")
    _await_weights(settings)
    launch.check_gpus(ids)
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def _group_args(group: list[str], size: int, log_level: str) -> list[str]:
    return ["--gpus", ",".join(group), "--gpus-per-job", str(size), "--log-level", log_level]


def _serve_one(settings, gpu: str | None) -> None:  # noqa: ANN001 - Settings
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # before the engine imports torch and sees the devices
    from infinitetalk.runtime.worker import WorkerRuntime

    log.info("worker on GPU %s; %s", gpu if gpu is not None else "none (CPU)", where(settings))
    WorkerRuntime(settings, gpu=gpu).serve()


def _serve_rank(settings) -> None:  # noqa: ANN001 - Settings
    """One process of a group that shares each job: rank 0 is the worker (queue, database, storage); the other
    ranks follow its jobs step by step (``cli/launch.py``)."""
    from infinitetalk.engines import load_engine

    rank = launch.join_job()
    engine = load_engine(settings, warm=False)
    ranks = launch.share(engine, settings)
    if rank != 0:
        launch.follow(engine, ranks)
        return
    from infinitetalk.runtime.worker import WorkerRuntime

    gpus = os.environ[launch.JOB_ENV]
    log.info("worker on GPUs %s, one job at a time on all of them; %s", gpus, where(settings))
    try:
        WorkerRuntime(settings, gpu=gpus, engine=launch.lead(engine, ranks)).serve()
    finally:
        ranks.release()
        launch.leave_job()


def _settings_env(settings) -> dict[str, str]:  # noqa: ANN001 - Settings
    """This command's settings as the environment of the processes it starts."""
    return {f"INFINITETALK_{name.upper()}": str(value) for name, value in (
        ("broker_url", settings.broker_url), ("database_url", settings.database_url), ("data_dir", settings.data_dir),
        ("engine", settings.engine), ("weights_dir", settings.weights_dir)) if value is not None}


#: A child that dies is started again after this many seconds, doubled on each death in a row up to the cap;
#: one that ran longer than the cap starts its count over.
RESTART_DELAY_S, RESTART_DELAY_CAP_S = 1.0, 60.0


class _Child:
    """One ``worker`` child process of the supervisor, started again when it dies."""

    def __init__(self, args: list[str]) -> None:
        self.args, self.delay = args, RESTART_DELAY_S
        self.due: float | None = None  # when a dead child starts again
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        self.started = time.monotonic()
        # stderr=sys.stderr: this process's fd 2 is /dev/null (main._silence_native_stderr); the children's logs
        # go where ours do
        return subprocess.Popen([sys.executable, "-m", "infinitetalk.cli", "worker", *self.args], stderr=sys.stderr)

    def watch(self) -> None:
        """Start the child again once it has been dead for its delay. Exit code 0 is a child asked to stop (a
        SIGTERM of its own): it stays stopped."""
        code = self.proc.poll()
        if code is None or code == 0:
            return
        now = time.monotonic()
        if self.due is None:
            if now - self.started > RESTART_DELAY_CAP_S:
                self.delay = RESTART_DELAY_S
            self.due = now + self.delay
            log.error("worker %s exited with %s; starting it again in %.0f s (its task, if any, is queued again "
                      "once its heartbeat is stale)", " ".join(self.args[:2]), code, self.delay)
            self.delay = min(self.delay * 2, RESTART_DELAY_CAP_S)
        elif now >= self.due:
            self.due, self.proc = None, self._start()


def _supervise(children_args: list[list[str]]) -> int:
    """One child ``worker`` per entry of ``children_args``, with this command's settings (already in the
    environment or given as options), each started again when it dies; SIGTERM/SIGINT are passed on to all, and
    the supervisor returns once they have stopped."""
    children = [_Child(args) for args in children_args]
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while not stopping.wait(0.5):
        for child in children:
            child.watch()
        if all(child.proc.poll() == 0 for child in children):  # every one was stopped on its own
            break
    return max(child.proc.wait() for child in children)


