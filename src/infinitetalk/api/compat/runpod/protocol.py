"""RunPod's wire format for its ``infinitetalk`` public endpoint (``runpod-infinitetalk-api.txt``)."""

from __future__ import annotations

import hashlib
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict

from infinitetalk.api.compat import common
from infinitetalk.tasks.models import MICROS, Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic

#: Endpoint ids -> the mode they run.
ENDPOINTS = {"infinitetalk": "image-to-video"}
#: How long ``/runsync`` holds the request before answering with the job still in progress (RunPod: ~90 s).
RUNSYNC_WAIT_S = 90
#: Identifies this server where RunPod names the worker that ran a job.
WORKER_ID = "local-" + hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]

NAMES = {"image": "input.image", "audio": "input.audio", "prompt": "input.prompt", "resolution": "input.size"}
STATES = {TaskStatus.QUEUED: "IN_QUEUE", TaskStatus.RUNNING: "IN_PROGRESS", TaskStatus.SUCCEEDED: "COMPLETED",
          TaskStatus.FAILED: "FAILED", TaskStatus.CANCELED: "CANCELLED"}


class InfiniteTalkInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str
    image: str
    audio: str
    size: Literal["480p", "720p"]
    #: Accepted; a server-wide checker (tasks.safety), when installed, checks every output.
    enable_safety_checker: bool = True


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: InfiniteTalkInput
    webhook: str | None = None

    def to_payload(self, mode: str) -> dict:
        given = self.input
        payload = {"mode": mode, "image": given.image, "audio": [given.audio], "prompt": given.prompt,
                   "resolution": given.size}
        if self.webhook:
            payload["callback_url"] = self.webhook
        return payload


def job(task: Task, public: TaskPublic) -> dict:
    """A job as RunPod shows it; ``output`` once COMPLETED, ``error`` once FAILED."""
    status = STATES[task.state]
    if status == "FAILED" and common.failure_label(task) == "Timeout":
        status = "TIMED_OUT"
    body: dict = {"id": task.id, "status": status,
                  "delayTime": common.ms_between(task.created_at, task.started_at) or 0,
                  "executionTime": common.ms_between(task.started_at, task.finished_at) or 0}
    if task.started_at:
        body["workerId"] = WORKER_ID
    if task.state is TaskStatus.SUCCEEDED:
        body["output"] = {"video_url": common.video_url(public), "cost": task.price_micros / MICROS}
    if task.state is TaskStatus.FAILED:
        body["error"] = common.failure_text(task)
    return body
