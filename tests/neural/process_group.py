"""Run a function on N forked processes that join one gloo process group, as torchrun's ranks do."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import pytest
import torch
import torch.multiprocessing as mp

from infinitetalk.runtime import launch


def _rank(rank: int, world: int, port: int, body: Callable[..., None], args: tuple, join: bool) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    if not join:  # the body joins and leaves the group itself
        body(rank, *args)
        return
    assert launch.join_job() == rank
    try:
        body(rank, *args)
    finally:
        launch.leave_job()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(body: Callable[..., None], args: tuple, *, world: int, timeout_s: float, join: bool = True) -> None:
    """``body(rank, *args)`` on ``world`` ranks, each in the process group (``join``), or with only torchrun's
    environment set. A rank that raises fails the test at once; ranks that hang (out of step) fail it after
    ``timeout_s``.

    fork: the ranks start in half a second with everything imported (spawn re-imports torch, diffusers and
    transformers: 20-45 s on a busy CI box); they run one thread each, as DataLoader's forked workers do.
    """
    ctx = mp.start_processes(_rank, args=(world, _free_port(), body, args, join), nprocs=world, join=False,
                             start_method="fork")
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1):  # raises at once if a rank raised or died
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {world} ranks did not finish in {timeout_s:.0f} s")
