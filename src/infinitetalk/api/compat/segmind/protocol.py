"""Segmind's wire format for ``infinite-talk`` (``segmind-infinite-talk-api.txt``) and its mapping."""

from __future__ import annotations

import urllib.parse

from pydantic import BaseModel, ConfigDict

from infinitetalk.api.compat import common
from infinitetalk.tasks.models import Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic

DEFAULT_PROMPT = "A professional woman speaks confidently, gesturing naturally while addressing the camera."
#: Slugs Segmind serves InfiniteTalk under. Its ``image`` may be "the source image or video": the mode
#: follows what the URL names.
MODELS = ("infinite-talk",)
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")
#: "Results are retained for 1 hour, then expire" (then the request id answers 404).
RESULT_RETENTION_S = 3600

NAMES = {"image": "image", "video": "image", "audio": "audio"}
STATES = {TaskStatus.QUEUED: "QUEUED", TaskStatus.RUNNING: "PROCESSING", TaskStatus.SUCCEEDED: "COMPLETED",
          TaskStatus.FAILED: "FAILED", TaskStatus.CANCELED: "FAILED"}


class InfiniteTalkInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str = DEFAULT_PROMPT
    image: str
    audio: str
    seed: int = 42424242
    resolution: str = "480p"
    fps: int = 25
    base64: bool = False

    def to_payload(self) -> dict:
        is_video = urllib.parse.urlsplit(self.image).path.lower().endswith(VIDEO_SUFFIXES)
        mode, source = ("video-to-video", "video") if is_video else ("image-to-video", "image")
        return {"mode": mode, source: self.image, "audio": [self.audio], "prompt": self.prompt, "seed": self.seed,
                "resolution": self.resolution, "fps": self.fps}


def submitted(task: Task, base_url: str) -> dict:
    response_url = f"{base_url}/v2/requests/{task.id}"
    return {"request_id": task.id, "status": STATES[task.state], "status_url": f"{response_url}/status",
            "response_url": response_url}


def status_body(task: Task) -> dict:
    body = {"request_id": task.id, "status": STATES[task.state]}
    if body["status"] == "FAILED":
        body["error"] = error_text(task)
    return body


def result_body(task: Task, public: TaskPublic) -> dict:
    body = status_body(task)
    body["output"] = common.video_url(public)
    body["metrics"] = {"queue_time_ms": common.ms_between(task.created_at, task.started_at),
                       "inference_time_ms": common.ms_between(task.started_at, task.finished_at),
                       "audio_seconds": round(task.audio_seconds, 3), "billed_seconds": task.billed_seconds}
    return body


def error_text(task: Task) -> str:
    if task.state is TaskStatus.CANCELED:
        return "Canceled: the request was canceled"
    return common.failure_text(task)
