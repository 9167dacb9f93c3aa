"""EachLabs' wire format for InfiniteTalk (``eachlabs-infinitalk-video-to-video-api.txt``) and its mapping."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from infinitetalk.api.compat import common
from infinitetalk.tasks.models import ApiKey, Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic


class EachLabsLimits(BaseSettings):
    """Per-key limits EachLabs documents ("100 creates / min, 10 concurrent per key"), applied where a key has
    none of its own. ``INFINITETALK_EACHLABS_CREATES_PER_MINUTE`` / ``..._MAX_CONCURRENT`` change them."""

    model_config = SettingsConfigDict(env_prefix="INFINITETALK_EACHLABS_", extra="ignore")
    creates_per_minute: int = 100
    max_concurrent: int = 10

    def apply(self, key: ApiKey | None) -> ApiKey | None:
        """A stand-in of ``key`` (same id, never stored) with these limits filled in where it has none; the
        service enforces them with its own checks, under its own lock."""
        if key is None:
            return None
        fields = {column.name: getattr(key, column.name) for column in ApiKey.__table__.columns}
        fields["creates_per_minute"] = key.creates_per_minute or self.creates_per_minute
        fields["max_concurrent"] = key.max_concurrent or self.max_concurrent
        return ApiKey(**fields)


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")
    audio: str
    prompt: str | None = None
    resolution: Literal["480p", "720p"] = "720p"
    mask_image: str | None = None
    seed: int | None = None

    def _shared(self) -> dict:
        shared: dict = {"audio": [self.audio], "resolution": self.resolution}
        if self.prompt:
            shared["prompt"] = self.prompt
        if self.mask_image:
            shared["mask"] = [self.mask_image]
        if self.seed is not None:
            shared["seed"] = self.seed
        return shared


class VideoInput(_Input):
    video: str

    def to_payload(self) -> dict:
        return {"mode": "video-to-video", "video": self.video, **self._shared()}


class ImageInput(_Input):
    image: str

    def to_payload(self) -> dict:
        return {"mode": "image-to-video", "image": self.image, **self._shared()}


#: Model slugs -> their input. The image-to-video slug is ours, named like EachLabs' video-to-video one.
MODELS: dict[str, type[_Input]] = {"infinitalk-video-to-video": VideoInput, "infinitalk-image-to-video": ImageInput}
NAMES = {"image": "input.image", "video": "input.video", "audio": "input.audio", "mask": "input.mask_image",
         "mask.0": "input.mask_image", "seed": "input.seed", "prompt": "input.prompt",
         "resolution": "input.resolution", "callback_url": "webhook_url"}
STATES = {TaskStatus.QUEUED: "processing", TaskStatus.RUNNING: "processing", TaskStatus.SUCCEEDED: "success",
          TaskStatus.FAILED: "error", TaskStatus.CANCELED: "error"}


class CreatePrediction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    version: str | None = None
    input: dict
    webhook_url: str | None = None


def error_body(message: str, details: str = "") -> dict:
    return {"status": "error", "message": message, "details": details}


def _failure(task: Task) -> tuple[str, str]:
    if task.state is TaskStatus.CANCELED:
        return "the prediction was canceled", "Canceled"
    return task.error_message or "failed", common.failure_label(task) or ""


def prediction(task: Task, public: TaskPublic) -> dict:
    body: dict = {"id": task.id, "predictionID": task.id, "status": STATES[task.state],
                  "output": common.video_url(public),
                  "metrics": {"predict_time": (common.ms_between(task.started_at, task.finished_at) or 0) / 1000}}
    if body["status"] == "error":
        body["message"], body["details"] = _failure(task)
    return body


def webhook(task: Task, public: TaskPublic) -> dict:
    succeeded = task.state is TaskStatus.SUCCEEDED
    return {"exec_id": task.id, "status": "succeeded" if succeeded else "failed",
            "output": common.video_url(public) or "", "error": "" if succeeded else _failure(task)[0]}


# --- The OpenAPI schema: the request and answers as EachLabs documents them (the models above stay lenient;
# these only describe). ---

class _InputDoc(BaseModel):
    audio: str = Field(description="The URL of the audio file.")
    prompt: str | None = Field(None, description="The positive prompt for the generation.")
    resolution: Literal["480p", "720p"] = Field("720p", description="Resolution of the video to generate.")
    mask_image: str | None = Field(None, description="Optional mask image to specify the person to animate.")
    # EachLabs' table says 1-2147483647 and, beside it, that -1 means a random seed; both are taken
    seed: int | None = Field(None, ge=-1, le=2147483647, description="The random seed; -1 means a random seed.")


class VideoInputDoc(_InputDoc):
    """``infinitalk-video-to-video``."""

    video: str = Field(description="The video for generating the output.")


class ImageInputDoc(_InputDoc):
    """``infinitalk-image-to-video`` (this server's, named like EachLabs' video-to-video one)."""

    image: str = Field(description="The portrait to animate.")


class CreatePredictionRequest(BaseModel):
    model: Literal["infinitalk-video-to-video", "infinitalk-image-to-video"]
    version: str | None = None
    input: VideoInputDoc | ImageInputDoc = Field(description="The model's input (video-to-video: `video`; "
                                                             "image-to-video: `image`).")
    webhook_url: str | None = Field(None, description="Gets `{exec_id, status, output, error}` when the job ends.")


class Created(BaseModel):
    status: Literal["success"]
    message: str
    predictionID: str


class PredictionMetrics(BaseModel):
    predict_time: float = Field(description="Seconds.")


class Prediction(BaseModel):
    id: str
    predictionID: str
    status: Literal["processing", "success", "error"] = Field(description="processing: poll again; success: read "
                                                                          "output; error: read message / details.")
    output: str | None = Field(description="URL of the generated video.")
    metrics: PredictionMetrics
    message: str | None = Field(None, description="Present when status is error.")
    details: str | None = Field(None, description="Present when status is error.")


class ErrorAnswer(BaseModel):
    status: Literal["error"]
    message: str
    details: str


#: EachLabs' "Errors" table (402, 403 and 503 are this server's: balance, a key's models, a busy store or disk).
ERRORS: dict[int | str, tuple[str, type[BaseModel] | None]] = {
    400: ("Invalid input", ErrorAnswer),
    401: ("Missing / invalid X-API-Key", ErrorAnswer),
    402: ("The key's balance does not cover the price", ErrorAnswer),
    403: ("The key may not use this model", ErrorAnswer),
    404: ("Unknown model or prediction id", ErrorAnswer),
    429: ("Rate limit: 100 creates / min, 10 concurrent per key", ErrorAnswer),
    503: ("The server's task store or disk is busy; retry after Retry-After", ErrorAnswer),
    "5XX": ("Retry with backoff", None),
}
