"""What the task service shows the world: one schema family per entity (create -> public)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from infinitetalk.schema import AudioLayout, GenerationRequest, Resolution, Sampling
from infinitetalk.tasks.models import TaskStatus

EXAMPLE_IMAGE = "https://example.com/portrait.jpg"
EXAMPLE_AUDIO = "https://example.com/speech.mp3"


class TaskCreate(GenerationRequest):
    """A GenerationRequest plus where to say when it is done."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"image": EXAMPLE_IMAGE, "audio": EXAMPLE_AUDIO, "resolution": "480p", "seed": 42},
                {
                    "image": EXAMPLE_IMAGE,
                    "audio": [EXAMPLE_AUDIO, "https://example.com/reply.mp3"],
                    "audio_layout": "add",
                    "callback_url": "https://example.com/hooks/infinitetalk",
                },
            ]
        },
    )
    callback_url: str | None = Field(None, description="Gets a signed POST (Standard Webhooks) when the task ends.")


class EstimateRequest(BaseModel):
    model_config = ConfigDict(
        extra="ignore", json_schema_extra={"examples": [{"audio": EXAMPLE_AUDIO, "resolution": "720p"}]}
    )
    audio: list[str] = Field(..., min_length=1, max_length=2)
    audio_layout: AudioLayout = AudioLayout.PARA
    resolution: Resolution = Resolution.P480
    sampling: Sampling = Sampling.STANDARD

    @field_validator("audio", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class Estimate(BaseModel):
    audio_seconds: float = Field(description="Probed length of the output timeline.")
    billed_seconds: int = Field(description="ceil(audio_seconds), at least the minimum.")
    rate: float = Field(description="USD per billed second at this resolution.")
    price: float
    currency: Literal["USD"] = "USD"
    resolution: Resolution


VIDEO_MP4 = "video/mp4"
HLS_PLAYLIST = "application/vnd.apple.mpegurl"


class TaskProgress(BaseModel):
    fraction: float = Field(description="0..1 over the whole job; never goes back, also when a task resumes.")
    stage: str | None = Field(None, description="What a running task is doing; null once it has ended.")
    eta_s: float | None = Field(None, description="Seconds left, estimated from progress so far.")
    chunk: int | None = Field(None, description="Chunks finished (each is a segment of the live preview).")
    chunks: int | None = Field(None, description="Chunks in the whole job.")
    frames_done: int | None = None
    frames: int | None = Field(None, description="Frames in the whole video.")
    video_s_done: float | None = Field(None, description="Seconds of video finished so far.")


class TaskCost(BaseModel):
    audio_seconds: float
    billed_seconds: int = Field(description="ceil(audio_seconds), at least the minimum: what the price is for.")
    price: float = Field(description="USD reserved at submit: billed_seconds x the resolution's rate.")
    currency: Literal["USD"] = "USD"
    charged: bool = Field(description="Reserved from the key's balance at submit.")
    refunded: bool = Field(description="Some or all of the price came back: see refund.")
    refund: float = Field(0.0, description="USD given back when the task ended: the whole price when it failed "
                          "through no fault of the caller or before any video was made, the price of the video not "
                          "made when it was canceled while running.")
    total: float = Field(0.0, description="What the task costs the key: price - refund (0 when not charged).")


class TaskTimings(BaseModel):
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    queue_delay_ms: int | None = None
    execution_ms: int | None = None


class TaskOutput(BaseModel):
    name: str
    url: str = Field(description="Signed; answers 410 once expires_at has passed.")
    expires_at: datetime
    content_type: str = Field(VIDEO_MP4, description=f"{VIDEO_MP4} for the video; {HLS_PLAYLIST} for "
                              "preview.m3u8, the live HLS preview of the chunks finished so far (while the task "
                              "runs, and after)")
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    partial: bool = Field(False, description="The video stops where the task was canceled: the chunks finished "
                          "by then, which is what the task was charged for.")


class TaskError(BaseModel):
    code: str = Field(description="The same snake_case codes as request errors: no_face_detected, "
                                  "image_unreadable, audio_unreadable, sensitive_content, timeout, storage_full, "
                                  "engine_error, ...")
    message: str = Field(description="What went wrong and what to do about it.")


class TaskUrls(BaseModel):
    get: str
    cancel: str
    events: str


class TaskPublic(BaseModel):
    id: str
    object: Literal["task"] = "task"
    model: str
    status: TaskStatus
    cancel_requested: bool = Field(False, description="A cancel was asked for. A running task stops at its next "
                                                      "step and its status becomes canceled; until then it runs.")
    progress: TaskProgress
    seed: int | None = None
    cost: TaskCost
    timings: TaskTimings
    outputs: list[TaskOutput] = Field(default_factory=list)
    outputs_expired: bool = False
    error: TaskError | None = None
    callback_url: str | None = None
    urls: TaskUrls


class TaskList(BaseModel):
    data: list[TaskPublic]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next (older) page.")


class UploadPublic(BaseModel):
    id: str
    url: str = Field(description="Use it (or the id) as an image/video/audio/mask reference in POST /v1/tasks, "
                                 "/v1/estimate and the provider-compatible routes; GET shows this upload.")
    filename: str
    bytes: int
    expires_at: datetime

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # the store keeps naive UTC; a client must not read a time with no zone as its own local time
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelResolution(BaseModel):
    resolution: Resolution
    square_size: str = Field(description="Output size for a square portrait; others keep about the same area.")
    usd_per_second: float = Field(description="Price per billed second of speech.")
    usd_per_second_fast: float = Field(description="The same for a fast request (`sampling: fast`).")


class ModelInfo(BaseModel):
    id: str = Field(description="The `model` of tasks made with it; what a key's allowed models name.")
    object: Literal["model"] = "model"
    mode: str
    description: str
    inputs: list[str] = Field(description="Request fields it takes (see TaskCreate).")
    resolutions: list[ModelResolution]
    min_billed_seconds: int
    max_audio_seconds: float
    max_speakers: int
    fps: list[int] = Field(description="Lowest, default and highest frame rate.")
    engine: str = Field(description="The engine this server renders with: preview (CPU) or neural.")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]
