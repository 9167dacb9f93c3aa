"""One job on a group of processes (``--gpus``): rank 0 leads, the other ranks follow it step by step.

Rank 0 runs each job as a single process does (inputs, render, segments, storage) on a ``LeadEngine``,
which hands the job to the other ranks before it starts. They run the same engine on it and drop what it
makes: their part is their share of every transformer forward (``engines.neural.parallel``). A rank that
skipped a collective the others entered would hang the group, so every decision that changes the path
through a job is rank 0's and reaches all ranks:

- the job, and the state it resumes from;
- cancel, before each step (rank 0's token: its caller's cancel, its deadline, its worker stopping);
- after each chunk: go on, or stop there (rank 0's render stopped reading chunks, say its segment could
  not be stored);
- a progress callback that raises on rank 0 (a heartbeat's database write) cancels every rank at the next
  step, and rank 0 then raises that error.

An error inside the engine itself (a bad input the engine refuses) is met by every rank at the same point:
the same code on the same inputs. These messages go over a gloo group of their own, with a timeout of days:
an idle follower waits there for the next job as long as its worker waits for a task, which NCCL's watchdog
does not allow on the GPU group.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta

import numpy as np

from infinitetalk.engines.base import (
    CancelToken,
    ChunkResult,
    EngineJob,
    EngineState,
    ProgressCallback,
    ResumableEngine,
    no_progress,
)
from infinitetalk.errors import Canceled

log = logging.getLogger(__name__)

#: How long a follower waits for rank 0's next message: an idle worker may wait for a task this long.
IDLE_TIMEOUT = timedelta(days=365)


class RankGroup:
    """Rank 0's messages to every rank of the job's process group (joined by all ranks together)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.group = dist.new_group(backend="gloo", timeout=IDLE_TIMEOUT)
        self.rank = dist.get_rank()

    @property
    def leads(self) -> bool:
        return self.rank == 0

    def send(self, message: object = None) -> object:
        """Rank 0's ``message`` on every rank (pickled; a job is a few MB: the portrait and the speech)."""
        box = [message if self.leads else None]
        self._dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def decide(self, yes: bool = False) -> bool:
        """Rank 0's ``yes`` on every rank: one byte, for the per-step and per-chunk decisions."""
        import torch

        flag = torch.tensor([int(yes and self.leads)], dtype=torch.uint8)
        self._dist.broadcast(flag, src=0, group=self.group)
        return bool(flag.item())

    def release(self) -> None:
        """Rank 0: the followers stop waiting for jobs and return from ``follow``."""
        self.send(None)


class _SharedCancel(CancelToken):
    """Checked by every rank before each step; the answer is rank 0's."""

    def __init__(self, ranks: RankGroup, token: CancelToken | None = None, progress: _KeptError | None = None) -> None:
        super().__init__()
        self._ranks, self._token, self._progress = ranks, token, progress

    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()

    @property
    def canceled(self) -> bool:
        return self._token is not None and self._token.canceled

    def raise_if_canceled(self) -> None:
        stop = self._ranks.leads and (self.canceled or (self._progress is not None and self._progress.error is not None))
        if self._ranks.decide(stop):
            raise Canceled("the task was canceled")


class _KeptError:
    """Rank 0's progress callback, with its first error kept instead of raised in the middle of a step
    (where the other ranks would wait in a collective for a rank that left)."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress, self.error = progress, None

    def __call__(self, fraction: float, stage: str) -> None:
        if self.error is not None:
            return
        try:
            self._progress(fraction, stage)
        except Exception as exc:  # noqa: BLE001 - raised again by the LeadEngine once every rank has stopped
            self.error = exc


class LeadEngine:
    """Rank 0's engine: ``engine``, with each job shared with the followers of ``ranks``."""

    def __init__(self, engine: ResumableEngine, ranks: RankGroup) -> None:
        if not ranks.leads:
            raise ValueError("only rank 0 leads a job")
        self.engine, self.name, self._ranks = engine, engine.name, ranks

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        for chunk in self.generate_chunks(job, progress, cancel):
            yield from chunk.frames

    def generate_chunks(
        self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken, resume: EngineState | None = None
    ) -> Iterator[ChunkResult]:
        # sent on the first next(), not at the call: a render that fails before it reads a chunk sends nothing
        self._ranks.send((job, resume))
        kept = _KeptError(progress)
        chunks = self.engine.generate_chunks(job, kept, _SharedCancel(self._ranks, cancel, kept), resume)
        with closing(chunks):
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except Canceled:
                    if kept.error is not None:
                        raise kept.error from None
                    raise
                if kept.error is not None:  # raised after the chunk's last step: the followers wait for a decision
                    self._ranks.decide(False)
                    raise kept.error
                try:
                    yield chunk
                except BaseException:  # closed (the render stopped reading) or an error thrown in
                    self._ranks.decide(False)
                    raise
                self._ranks.decide(True)


def follow(engine: ResumableEngine, ranks: RankGroup) -> int:
    """A rank other than 0: run rank 0's jobs in step with it until it releases this rank. Returns the
    number of jobs run."""
    if ranks.leads:
        raise ValueError("rank 0 leads; it does not follow")
    jobs = 0
    while (message := ranks.send()) is not None:
        job, resume = message
        jobs += 1
        try:
            for _ in engine.generate_chunks(job, no_progress, _SharedCancel(ranks), resume):
                if not ranks.decide():
                    break
        except Canceled:
            pass
        except Exception as exc:  # rank 0 meets the same error at the same point (same code, same inputs), reports it
            log.warning("rank %d: the job failed here too: %s", ranks.rank, exc)
            log.debug("rank %d: the job's error", ranks.rank, exc_info=exc)
    return jobs
