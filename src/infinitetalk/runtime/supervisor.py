"""The processes of `infinitetalk worker` on several GPUs: one worker per GPU, or one group of processes per
``--gpus-per-job`` GPUs (torchrun's ranks, ``runtime.launch``) sharing each job. Each child runs `infinitetalk
worker` again, with this command's settings in its environment; one that dies is started again, and SIGTERM or
SIGINT here goes on to every child, whose task goes back to the queue."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from infinitetalk.config import Settings
from infinitetalk.errors import InvalidRequest
from infinitetalk.runtime import launch

log = logging.getLogger("infinitetalk.worker")

#: Set for the worker processes started here: their GPU ids were checked already, so they do not count the GPUs
#: again (counting them in the process that renders would fix CUDA's view before CUDA_VISIBLE_DEVICES).
GPUS_CHECKED = "INFINITETALK_GPUS_CHECKED"

#: A group's exit code when SIGTERM or SIGINT stopped it (torchrun reports 128 + the signal).
STOPPED = (128 + signal.SIGTERM, 128 + signal.SIGINT)

#: A child that dies is started again after this many seconds, doubled on each death in a row up to the cap;
#: one that ran longer than the cap starts its count over.
RESTART_DELAY_S, RESTART_DELAY_CAP_S = 1.0, 60.0

#: How often the supervisor looks at its children.
WATCH_S = 0.5


def job_groups(devices: list[str | None], size: int, settings: Settings) -> list[list[str]]:
    """The GPUs split into groups of ``size``, one job at a time on each; refused when that cannot work. The GPUs
    themselves are not looked for here (that imports torch): ``launch.check_gpus`` does, once the weights are in."""
    launch.require_neural(settings.engine, settings.weights_dir, "--gpus-per-job")
    if None in devices:
        raise InvalidRequest("--gpus-per-job: this machine has no CUDA GPU", field="gpus_per_job")
    ids = [str(device) for device in devices]
    if len(ids) % size:
        divisors = ", ".join(str(n) for n in range(1, len(ids) + 1) if len(ids) % n == 0)
        raise InvalidRequest(f"--gpus-per-job {size} does not divide the {len(ids)} GPUs given; use {divisors}",
                             field="gpus_per_job")
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def run_workers(settings: Settings, devices: list[str | None], *, log_level: str) -> int:
    """One worker process per device, supervised; returns once every one has stopped."""
    _hand_down(settings)
    return supervise({f"--gpus {device}": _worker_command(["--gpus", str(device), "--log-level", log_level])
                      for device in devices})


def run_groups(settings: Settings, groups: list[list[str]], *, log_level: str) -> int:
    """One group of ranks per entry of ``groups``: one group runs under torchrun here; several are supervised,
    each a child that runs its own torchrun. A group asked to stop that stopped exits 0."""
    _hand_down(settings)
    args = [["--gpus", ",".join(group), "--gpus-per-job", str(len(group)), "--log-level", log_level]
            for group in groups]
    if len(groups) == 1:
        code = launch.run_ranks(groups[0], ["worker", *args[0]])
        return 0 if code in STOPPED else code
    return supervise({f"--gpus {group_args[1]}": _worker_command(group_args) for group_args in args})


def _hand_down(settings: Settings) -> None:
    """This command's settings (and the GPU check done) into the environment the children inherit."""
    os.environ.update({f"INFINITETALK_{name.upper()}": str(value) for name, value in (
        ("broker_url", settings.broker_url), ("database_url", settings.database_url), ("data_dir", settings.data_dir),
        ("engine", settings.engine), ("weights_dir", settings.weights_dir)) if value is not None})
    os.environ[GPUS_CHECKED] = "1"


def _worker_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "infinitetalk.cli", "worker", *args]


class Child:
    """One child process of the supervisor, started again when it dies; ``name`` is what the logs call it."""

    def __init__(self, name: str, command: list[str]) -> None:
        self.name, self.command, self.delay = name, command, RESTART_DELAY_S
        self.due: float | None = None  # when a dead child starts again
        self.proc = self._start()

    def _start(self) -> subprocess.Popen:
        self.started = time.monotonic()
        # stderr=sys.stderr: this process's fd 2 is /dev/null (main._silence_native_stderr); the children's logs
        # go where ours do
        return subprocess.Popen(self.command, stderr=sys.stderr)

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
                      "once its heartbeat is stale)", self.name, code, self.delay)
            self.delay = min(self.delay * 2, RESTART_DELAY_CAP_S)
        elif now >= self.due:
            self.due, self.proc = None, self._start()


def supervise(commands: Mapping[str, list[str]]) -> int:
    """One child per command (by name), each started again when it dies; SIGTERM/SIGINT are passed on to all,
    and this returns once they have stopped (the highest exit code), or once every one stopped on its own (0).
    Call it from the main thread: it takes SIGTERM and SIGINT until it returns."""
    children = [Child(name, command) for name, command in commands.items()]
    stopping = threading.Event()

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        for child in children:
            if child.proc.poll() is None:
                child.proc.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping.wait(WATCH_S):
            for child in children:
                child.watch()
            if all(child.proc.poll() == 0 for child in children):  # every one was stopped on its own
                break
        return max(child.proc.wait() for child in children)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
