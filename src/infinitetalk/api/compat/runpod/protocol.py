"""RunPod's wire format for its ``infinitetalk`` public endpoint (``runpod-infinitetalk-api.txt``)."""

from __future__ import annotations

import hashlib
import socket
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infinitetalk.api.compat import common
from infinitetalk.tasks.models import MICROS, Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic
from infinitetalk.tasks.views import charged_micros

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
    video = common.video_url(public)  # a canceled job's: the part made before the cancel, which it paid for
    if task.state is TaskStatus.SUCCEEDED or (task.state is TaskStatus.CANCELED and video):
        body["output"] = {"video_url": video, "cost": charged_micros(task) / MICROS}
    if task.state is TaskStatus.FAILED:
        body["error"] = common.failure_text(task)
    return body


# --- The OpenAPI schema: the request and answers as RunPod documents them (the models above validate; these
# only describe). ---

JobState = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]


class InputDoc(BaseModel):
    prompt: str = Field(description="Text description of the desired video.")
    image: str = Field(description="URL of the source image to animate.")
    audio: str = Field(description="URL of the audio file to drive the animation.")
    size: Literal["480p", "720p"] = Field(description="Output video resolution.")
    enable_safety_checker: bool = Field(True, description="Enable content safety checking (by the server's checker, "
                                                          "when one is installed).")


class RunRequestDoc(BaseModel):
    input: InputDoc
    webhook: str | None = Field(None, description="Gets the job, as /status shows it, when it ends.")


class JobStatus(BaseModel):
    id: str
    status: JobState


class JobOutput(BaseModel):
    video_url: str | None = Field(description="URL of the generated video.")
    cost: float = Field(description="Cost of the generation in USD (what the key was charged).")


class Job(JobStatus):
    delayTime: int = Field(description="Milliseconds the request spent in the queue before processing began.")
    executionTime: int = Field(description="Milliseconds the model took to generate the video.")
    workerId: str | None = Field(None, description="The worker that processed the request, once one has.")
    output: JobOutput | None = Field(None, description="Present when COMPLETED, and when CANCELLED after part of "
                                     "the video was made (that part, and what it cost).")
    error: str | None = Field(None, description="Present when FAILED.")


class JobCounts(BaseModel):
    completed: int
    failed: int
    inProgress: int
    inQueue: int
    retried: int


class WorkerCounts(BaseModel):
    idle: int
    running: int
    ready: int
    initializing: int
    throttled: int
    unhealthy: int


class Health(BaseModel):
    jobs: JobCounts
    workers: WorkerCounts


class FailedAnswer(BaseModel):
    id: str | None = None
    status: Literal["FAILED"]
    error: str


class ErrorAnswer(BaseModel):
    error: str


#: RunPod documents 200 and a 400 ``{status: FAILED, error}``; the rest are this server's, in RunPod's
#: ``{error}`` shape.
ERRORS: dict[int | str, tuple[str, type[BaseModel] | None]] = {
    400: ("The request is invalid (a field, or an input that cannot be fetched or read)", FailedAnswer),
    401: ("Missing or invalid API key", ErrorAnswer),
    402: ("The key's balance does not cover the price", ErrorAnswer),
    403: ("The key may not use this endpoint", ErrorAnswer),
    404: ("Unknown endpoint or job id", ErrorAnswer),
    429: ("Rate or concurrency limit; see Retry-After", ErrorAnswer),
    500: ("Server error", None),
    503: ("The server's task store or disk is busy; retry after Retry-After", ErrorAnswer),
}
