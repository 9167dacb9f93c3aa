"""Segmind's wire format for ``infinite-talk`` (``segmind-infinite-talk-api.txt``) and its mapping."""

from __future__ import annotations

import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infinitetalk.api.compat import common
from infinitetalk.tasks.models import Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic
from infinitetalk.tasks.views import charged_seconds

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
                       "audio_seconds": round(task.audio_seconds, 3), "billed_seconds": charged_seconds(task)}
    return body


def error_text(task: Task) -> str:
    if task.state is TaskStatus.CANCELED:
        return "Canceled: the request was canceled"
    return common.failure_text(task)


# --- The OpenAPI schema: the request and answers as Segmind documents them (the model above stays lenient; these
# only describe). ---

State = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]


class InfiniteTalkRequest(BaseModel):
    prompt: str = Field(description="Describe the scene, emotion, or action guiding the full-body animation. "
                                    f"Default: {DEFAULT_PROMPT!r}", examples=[DEFAULT_PROMPT])
    image: str = Field(json_schema_extra={"format": "uri"},
                       description="URL of the source image or video to animate (a video URL: video-to-video).")
    audio: str = Field(json_schema_extra={"format": "uri"}, description="URL of the audio file to synchronize.")
    base64: bool = Field(False, description="Answer `{video: <base64>}` instead of the MP4 itself (/v1 only).")
    fps: int = Field(25, ge=16, le=30, description="Frames per second of the output video.")
    resolution: Literal["480p", "576p", "720p"] = "480p"
    seed: int = Field(42424242, description="Fix it for reproducible results.")


class SubmitAnswer(BaseModel):
    request_id: str
    status: State
    status_url: str
    response_url: str


class StatusAnswer(BaseModel):
    request_id: str
    status: State
    error: str | None = Field(None, description="Present when status is FAILED (then served as HTTP 422).")


class Metrics(BaseModel):
    queue_time_ms: int | None = None
    inference_time_ms: int | None = None
    audio_seconds: float
    billed_seconds: int = Field(description="Seconds the key paid for: the whole speech when COMPLETED, the video "
                                "made when canceled part-way, 0 when refunded.")


class ResultAnswer(StatusAnswer):
    output: str | None = Field(None, description="The video's URL once COMPLETED.")
    metrics: Metrics


class Base64Video(BaseModel):
    video: str = Field(description="The MP4, base64-encoded.")
    request_id: str


class ErrorAnswer(BaseModel):
    error: str


#: Segmind's "Common Error Codes" (503 is this server's: its task store or disk is busy).
ERRORS: dict[int | str, tuple[str, type[BaseModel] | None]] = {
    400: ("Bad Request: invalid parameters or request format", ErrorAnswer),
    401: ("Unauthorized: missing or invalid API key", ErrorAnswer),
    403: ("Forbidden: insufficient permissions", ErrorAnswer),
    404: ("Not Found: model, endpoint or request not found (results expire after 1 hour)", ErrorAnswer),
    406: ("Insufficient Credits: not enough credits to process request", ErrorAnswer),
    429: ("Rate Limited: too many requests", ErrorAnswer),
    500: ("Server Error: internal server error", None),
    502: ("Bad Gateway: service temporarily unavailable", None),
    503: ("The server's task store or disk is busy; retry after Retry-After", ErrorAnswer),
    504: ("Timeout: request timed out", ErrorAnswer),
}
