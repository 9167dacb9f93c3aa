"""What the task service needs from the process it runs in, as protocols (``runtime`` implements them).

The state machine (``tasks.lifecycle``) and the service (``tasks.service``) call these and never import the
runtime: a ``Dispatcher`` hands a task id to whatever runs it (threads here, a broker to other machines), a
runner reports a task's progress and ending through ``RunEvents``, and ``TaskMetrics`` counts what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from infinitetalk.errors import InfiniteTalkError
from infinitetalk.render.checkpoint import WorkFolder
from infinitetalk.render.render import ChunkProgress, RenderResult
from infinitetalk.schema import GenerationRequest


@dataclass(frozen=True)
class Run:
    """One run of a task, as its worker claimed it: what to render and where (the engine's side is an
    ``EngineJob``)."""

    task_id: str
    #: Media refs point at local files already fetched into the task's input folder.
    request: GenerationRequest
    output_path: Path
    #: Where the render keeps its segments and checkpoint: a requeued task resumes from there.
    work: WorkFolder | None = None


class RunEvents(Protocol):
    def start(self, task_id: str) -> Run | None:
        """Mark the task running; None when it must not run (canceled while queued, unknown)."""
        ...

    def heartbeat(self, task_id: str, fraction: float, stage: str) -> bool:
        """Record progress; True when someone asked the task to stop."""
        ...

    def chunk_done(self, task_id: str, done: ChunkProgress) -> None:
        """A chunk and its preview segment are finished and stored."""
        ...

    def succeeded(self, task_id: str, result: RenderResult) -> None: ...

    def failed(self, task_id: str, error: InfiniteTalkError) -> None: ...

    def canceled(self, task_id: str, partial: RenderResult | None = None) -> None:
        """The caller stopped the task while it ran; ``partial``: the video of the chunks it finished."""
        ...

    def requeue(self, task_id: str) -> None:
        """Put a running task back in the queue (this process is stopping)."""
        ...


class Dispatcher(Protocol):
    def submit(self, task_id: str) -> None: ...

    def cancel(self, task_id: str) -> bool:
        """Ask a running task to stop at its next boundary; False if it is not running here."""
        ...

    def running(self) -> frozenset[str]:
        """Ids of the tasks this process runs now (none, when workers elsewhere run them)."""
        ...

    def shutdown(self) -> None: ...


class TaskMetrics(Protocol):
    def accepted(self) -> None: ...

    def started(self, queue_delay_s: float) -> None: ...

    def finished(self, status: str, code: str | None, execution_s: float | None) -> None: ...
