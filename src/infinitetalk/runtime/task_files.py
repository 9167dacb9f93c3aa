"""A task's files around its run: the runner's ``RunEvents``, made of the lifecycle's transitions plus the files.

Before a run its inputs come from storage (fetched to this machine when storage is a shared bucket); after it the
video goes to storage once the safety checker has passed it, and the lifecycle records how the task ended. The
lifecycle itself changes rows, money and the outbox only; when a task ends anywhere (here, a cancel at the API, the
reaper) it tells ``finished``, which drops the task's inputs and checkpoint (the segments stay: the live preview,
until retention).
"""

from __future__ import annotations

import logging

from infinitetalk.errors import InfiniteTalkError, SensitiveContent, StorageUnavailable
from infinitetalk.render.checkpoint import WorkFolder
from infinitetalk.render.render import ChunkProgress, RenderResult
from infinitetalk.storage import OutputMirror, Storage
from infinitetalk.tasks import staging
from infinitetalk.tasks.lifecycle import TaskLifecycle
from infinitetalk.tasks.ports import Run
from infinitetalk.tasks.safety import SafetyChecker

log = logging.getLogger("infinitetalk.tasks")


def work_folder(storage: Storage, task_id: str) -> WorkFolder:
    """Where the task's segments and checkpoint live: its output folder, kept in shared storage too when there is
    one (another worker may resume the task)."""
    mirror = OutputMirror(storage, task_id) if storage.shared else None
    return WorkFolder(storage.output_path(task_id).parent, mirror)


def finished(storage: Storage, task_id: str) -> None:
    """A task ended: what only its runs needed goes."""
    work_folder(storage, task_id).clear_checkpoint()
    storage.delete_inputs(task_id)


class TaskFiles:
    """Implements the runner's RunEvents."""

    def __init__(self, lifecycle: TaskLifecycle, storage: Storage, safety: SafetyChecker) -> None:
        self.lifecycle, self.storage, self.safety = lifecycle, storage, safety

    def start(self, task_id: str) -> Run | None:
        request = self.lifecycle.start(task_id)
        if request is None:
            return None
        try:
            inputs = self.storage.open_inputs(task_id)
        except (StorageUnavailable, FileNotFoundError) as exc:
            log.error("task %s: its inputs could not be read from storage: %s", task_id, exc)
            self.lifecycle.failed(task_id, StorageUnavailable(
                "the task's input files could not be read from the server's storage; you are not charged for it. "
                "Try again in a few minutes"))
            return None
        return Run(task_id=task_id, request=staging.resolved_inputs(request, inputs),
                   output_path=self.storage.output_path(task_id), work=work_folder(self.storage, task_id))

    def heartbeat(self, task_id: str, fraction: float, stage: str) -> bool:
        return self.lifecycle.heartbeat(task_id, fraction, stage)

    def chunk_done(self, task_id: str, done: ChunkProgress) -> None:
        self.lifecycle.chunk_done(task_id, done)

    def succeeded(self, task_id: str, result: RenderResult) -> None:
        verdict = self.safety.check(result.path)  # NoChecker by default: nsfw None, "not checked"
        if verdict.flagged:
            self.lifecycle.failed(task_id, SensitiveContent(verdict.reason or "the output was flagged as unsafe"))
            return
        try:
            self.storage.store_output(task_id, result.path)  # to the shared bucket (S3); in place on one machine
        except StorageUnavailable:
            self.lifecycle.failed(task_id, StorageUnavailable(
                "the video was made but could not be stored; you are not charged for it. Try again in a few minutes"))
            return
        self.lifecycle.succeeded(task_id, seed=result.seed, outputs={result.path.name: _meta(result, verdict.nsfw)})

    def failed(self, task_id: str, error: InfiniteTalkError) -> None:
        self.lifecycle.failed(task_id, error)

    def canceled(self, task_id: str, partial: RenderResult | None = None) -> None:
        """The video made before the cancel is kept (and paid for) when it can be handed over; else nothing is."""
        outputs = self._keep_partial(task_id, partial) if partial is not None else None
        self.lifecycle.canceled(task_id, outputs=outputs, made_s=partial.duration_s if outputs else 0.0)

    def requeue(self, task_id: str) -> None:
        self.lifecycle.requeue(task_id)

    def _keep_partial(self, task_id: str, partial: RenderResult) -> dict | None:
        verdict = self.safety.check(partial.path)
        if verdict.flagged:
            log.warning("task %s: the video made before the cancel was flagged (%s); not kept", task_id,
                        verdict.reason)
            return None
        try:
            self.storage.store_output(task_id, partial.path)
        except StorageUnavailable:
            log.error("task %s: the video made before the cancel could not be stored", task_id)
            return None
        return {partial.path.name: {**_meta(partial, verdict.nsfw), "partial": True}}


def _meta(result: RenderResult, nsfw: bool | None) -> dict:
    return {"duration_s": round(result.duration_s, 3), "width": result.width, "height": result.height,
            "fps": result.fps, "nsfw": nsfw}
