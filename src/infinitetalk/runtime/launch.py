"""One job on several GPUs of this machine, one process (rank) per GPU: ``generate --gpus 0-7`` and
``worker --gpus 0-7 --gpus-per-job 8``.

The command starts itself again under ``torch.distributed.run`` (torchrun) with ``CUDA_VISIBLE_DEVICES``
set to those GPUs (and, for generate, the seed fixed). Each rank runs one ``rank_session``: it takes its
GPU, joins the process group, loads the engine and shares its transformer's forwards with the others
(``engines/neural/parallel.py``). Rank 0 does what one process does (the video, the progress bar; a
worker's queue, database and storage) on a ``LeadEngine``, which hands each job to the other ranks; they
follow it step by step (``engines/ranks.py``) until rank 0 releases them. Signals: rank 0 alone decides
when to stop (it cancels at the next step, in step with the others); the other ranks ignore SIGINT and
SIGTERM and wait for it.

The session lives here, not in ``engines/ranks.py``: joining reads torchrun's environment, and the
engines know nothing of how their processes were started.

``INFINITETALK_RANKS_ON_CPU=1`` lets the ranks run on the CPU (gloo) where no GPU is, for tests only: it
is slow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from infinitetalk.config import Settings
from infinitetalk.engines import Engine
from infinitetalk.engines.ranks import LeadEngine, RankGroup
from infinitetalk.engines.ranks import follow as follow_jobs
from infinitetalk.errors import InvalidRequest

Led = TypeVar("Led")

#: Set by torchrun in every rank it starts.
RANK_ENV = "LOCAL_RANK"
#: Set for the ranks of a ``--gpus`` job (not only LOCAL_RANK: this command may itself run under a launcher).
JOB_ENV = "INFINITETALK_GPUS_JOB"
CPU_ENV = "INFINITETALK_RANKS_ON_CPU"


def parse_gpu_ids(text: str) -> list[str]:
    """'0-7' -> 0..7, '0,1' -> 0 and 1, '0-3,6' -> 0..3 and 6: distinct ids, in the order given."""
    ids: list[str] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            first, _, last = part.partition("-")
            span = range(int(first), int(last or first) + 1)
            if not span or int(first) < 0:
                raise ValueError(part)
            ids.extend(str(i) for i in span if str(i) not in ids)
    except ValueError:
        raise InvalidRequest(f"--gpus '{text}': give GPU ids like 0-7 or 0,1", field="gpus") from None
    return ids


def parse_gpus(text: str) -> list[str]:
    """The GPUs of one job: two or more."""
    ids = parse_gpu_ids(text)
    if len(ids) < 2:
        raise InvalidRequest(f"--gpus '{text}' names one GPU; give two or more, or leave --gpus out", field="gpus")
    return ids


#: What each option that shares a job among GPUs does, as its refusal says it (see ``require_neural``).
_SHARES = {
    "--gpus": "runs the neural engine:",
    "--gpus-per-job": "shares each step of a job among GPUs: it runs the neural engine;",
}


def runs_neural(engine: str, weights_dir: Path | None) -> bool:
    """Whether the engine named (``auto`` included) is the neural one, as ``engines.load_engine`` decides."""
    return engine == "neural" or (engine == "auto" and weights_dir is not None)


def require_neural(engine: str, weights_dir: Path | None, option: str) -> None:
    """A job shared among GPUs (``generate --gpus``, ``worker --gpus-per-job``) runs the neural engine, on the
    weights folder given; refused before any process starts."""
    if not runs_neural(engine, weights_dir) or weights_dir is None:
        raise _needs_neural(option)


def _needs_neural(option: str) -> InvalidRequest:
    return InvalidRequest(f"{option} {_SHARES[option]} give --weights DIR (and --engine neural or auto), or leave "
                          f"{option} out", field=option.lstrip("-").replace("-", "_"))


def check_gpus(ids: list[str]) -> None:
    """Refuse ids this machine does not have (a rank that saw no GPU would quietly run on the CPU)."""
    if os.environ.get(CPU_ENV) == "1":
        return
    import torch

    count = torch.cuda.device_count()
    if not count:
        raise InvalidRequest("--gpus: this machine has no CUDA GPU; leave --gpus out to run on the CPU", field="gpus")
    missing = [i for i in ids if int(i) >= count]
    if missing:
        raise InvalidRequest(f"--gpus: no GPU {', '.join(missing)} here (GPUs 0-{count - 1} are)", field="gpus")


def cuda_device_count() -> int:
    """The CUDA GPUs this machine shows (``CUDA_VISIBLE_DEVICES`` applied; none without torch), counted in a
    child interpreter: a count taken in a worker that renders later would fix its view of CUDA before it sets
    ``CUDA_VISIBLE_DEVICES`` to its own GPU."""
    try:
        counted = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                                 capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    answer = counted.stdout.strip().splitlines()[-1:] if counted.returncode == 0 else []
    return int(answer[0]) if answer and answer[0].isdigit() else 0


def check_gpu_ids(ids: list[str]) -> None:
    """A worker's ``--gpus`` ids: refuse those this machine does not have, naming those it has."""
    if os.environ.get(CPU_ENV) == "1":
        return
    count = cuda_device_count()
    if not count:
        raise InvalidRequest(f"--gpus {','.join(ids)}: this machine has no CUDA GPU; leave --gpus out to run one "
                             "worker on the CPU (slow for the neural engine), or use the preview engine",
                             field="gpus")
    missing = [i for i in ids if int(i) >= count]
    if missing:
        have = "GPU 0" if count == 1 else f"GPUs 0-{count - 1}"
        raise InvalidRequest(f"--gpus: no GPU {', '.join(missing)} here (this machine has {have})", field="gpus")


def torchrun_args(ids: list[str], argv: list[str], seed: int | None = None) -> list[str]:
    """torchrun's arguments to run ``infinitetalk <argv>`` once per GPU, all with one seed when given.

    ``--seed`` is appended: the last one given wins. ``--standalone`` picks a free local port.
    """
    seeded = ["--seed", str(seed)] if seed is not None else []
    return ["--standalone", f"--nproc-per-node={len(ids)}", "-m", "infinitetalk.cli", *argv, *seeded]


def rank_environment(ids: list[str]) -> dict[str, str]:
    """What the ranks' environment adds: their GPUs, and CPU threads shared out (torchrun's default is 1)."""
    env = {"CUDA_VISIBLE_DEVICES": ",".join(ids), JOB_ENV: ",".join(ids)}
    # how long torchrun waits, once signalled, for the ranks to stop on their own before it kills them: rank 0
    # stops at its next step and queues its task again (torchrun's default, 30 s, may be shorter than a step)
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", os.environ.get("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", "120"))
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(ids)))
    return env


def in_rank() -> bool:
    """True inside a rank of a ``--gpus`` job (started by ``run_ranks``)."""
    return JOB_ENV in os.environ and RANK_ENV in os.environ


def run_ranks(ids: list[str], argv: list[str], seed: int | None = None) -> int:
    """Run torchrun here (not as a program, whose failure report is a traceback) and wait for every rank.

    torchrun stops the other ranks when one fails; that rank has printed its own error. SIGINT or SIGTERM
    here goes to every rank (torchrun passes it on). Returns the exit code: 128 + the signal's number after
    one, as a shell reports a process a signal stopped.
    """
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.update(rank_environment(ids))
    _terminal_stderr()
    try:
        run(get_args_parser().parse_args(torchrun_args(ids, argv, seed)))
    except ChildFailedError as exc:
        failed = sorted(rank for rank, f in exc.failures.items() if f.exitcode > 0) or sorted(exc.failures)
        print(f"the job stopped: rank {', '.join(map(str, failed))} failed", file=sys.stderr)
        return max(1, max(exc.failures[r].exitcode for r in failed))
    except SignalException as exc:
        return 128 + int(exc.sigval)
    return 0


def _terminal_stderr() -> None:
    """``main()`` pointed file descriptor 2 at /dev/null (native libraries' chatter) and kept the terminal
    for ``sys.stderr``; the ranks inherit descriptor 2, so give it the terminal back, or their progress bar
    and errors vanish."""
    try:
        sys.stderr.flush()
        os.dup2(sys.stderr.fileno(), 2)
    except (AttributeError, OSError, ValueError):  # an in-process caller's stream has no descriptor: keep 2
        pass


def join_job() -> int:
    """In a rank: take this rank's GPU and join the others (torchrun's environment). Returns the rank."""
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ[RANK_ENV]))  # "cuda" means this rank's GPU from here on
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return dist.get_rank()


def share(engine: Engine, settings: Settings) -> RankGroup:
    """Make ``engine`` share each forward with the other ranks (the neural engine only), warm it up once it
    does (when compiling), and open the channel rank 0 leads the job through."""
    from infinitetalk.engines.neural.engine import NeuralEngine
    from infinitetalk.engines.neural.parallel import enable_parallel

    if not isinstance(engine, NeuralEngine):  # the command refused this before it started the ranks
        raise _needs_neural("--gpus")
    enable_parallel(engine.pipeline.transformer)
    if settings.neural_compile:  # the shapes each rank's blocks see now: its share of the sequence
        from infinitetalk.engines.neural.speed import warm_up

        warm_up(engine)
    return RankGroup()


def rank_session(settings: Settings, load: Callable[[], Engine], lead: Callable[[Engine], Led]) -> Led | None:
    """One rank of a ``--gpus`` job, from joining the others to leaving them: ``load()`` the engine (not warmed
    up: it warms up once it shares its forwards), share it, then on rank 0 ``lead(engine)``, where each job that
    engine runs is handed to the other ranks first; they follow rank 0's jobs, in step with it, until ``lead``
    returns (or raises) and rank 0 lets them go. Returns what ``lead`` returned on rank 0, None on the others."""
    rank = join_job()
    engine = load()
    ranks = share(engine, settings)
    try:
        if rank != 0:
            _follow(engine, ranks)
            return None
        try:
            return lead(LeadEngine(engine, ranks))  # type: ignore[arg-type] - share() checked it is neural
        finally:
            ranks.release()
    finally:
        leave_job()


def _follow(engine: Engine, ranks: RankGroup) -> None:
    """Signals are rank 0's to act on: leaving on one here would leave the others waiting in a collective."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    follow_jobs(engine, ranks)  # type: ignore[arg-type] - share() checked it is the neural engine


def leave_job() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
