"""WaveSpeed's wire format for InfiniteTalk (``wavespeed-infinitetalk-api.txt``) and its mapping."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infinitetalk.api.compat import common
from infinitetalk.tasks.models import Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic

#: Billing rule from the doc: per second of video, rounded up, "Minimum charge: 5 seconds".
MIN_BILLED_SECONDS = 5
#: Largest accepted file on the media upload route (WaveSpeed's SDK caps streams at 200 MB).
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
STATES = {TaskStatus.QUEUED: "created", TaskStatus.RUNNING: "processing", TaskStatus.SUCCEEDED: "completed",
          TaskStatus.FAILED: "failed", TaskStatus.CANCELED: "failed"}


class _Common(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt: str | None = None
    resolution: Literal["480p", "720p"] = "480p"
    seed: int = -1
    #: Answer when the task has ended instead of at once (the SDK's ``enable_sync_mode=True``).
    enable_sync_mode: bool = False

    def to_payload(self, *, fast: bool = False) -> dict:
        """The canonical request; ``fast``: an ``infinitetalk-fast`` route, our 4-step sampling at the fast rate."""
        shared: dict = {"resolution": self.resolution, "seed": self.seed}
        if self.prompt:  # the SDKs send "" for "no prompt"; ours refuses a blank one
            shared["prompt"] = self.prompt
        if fast:
            shared["sampling"] = "fast"
        return {**self._inputs(), **shared}

    def _inputs(self) -> dict:
        raise NotImplementedError


class ImageToVideo(_Common):
    image: str
    audio: str
    mask_image: str | None = None

    def _inputs(self) -> dict:
        mask = {"mask": [self.mask_image]} if self.mask_image else {}
        return {"mode": "image-to-video", "image": self.image, "audio": [self.audio], **mask}


class VideoToVideo(_Common):
    video: str
    audio: str
    mask_image: str | None = None

    def _inputs(self) -> dict:
        mask = {"mask": [self.mask_image]} if self.mask_image else {}
        return {"mode": "video-to-video", "video": self.video, "audio": [self.audio], **mask}


class _TwoSpeakers(_Common):
    left_audio: str
    right_audio: str
    order: Literal["meanwhile", "left_right", "right_left"] = "meanwhile"

    def _tracks(self) -> dict:
        audio = [self.right_audio, self.left_audio] if self.order == "right_left" else [self.left_audio,
                                                                                      self.right_audio]
        return {"audio": audio, "audio_layout": "para" if self.order == "meanwhile" else "add"}


class Multi(_TwoSpeakers):
    """Two people in one picture: one track each, together ("meanwhile") or one after the other."""

    image: str

    def _inputs(self) -> dict:
        return {"mode": "image-to-video", "image": self.image, **self._tracks()}


class VideoToVideoMulti(_TwoSpeakers):
    """Two people in a video, dubbed: multi's fields with a video in place of the picture."""

    video: str

    def _inputs(self) -> dict:
        return {"mode": "video-to-video", "video": self.video, **self._tracks()}


#: Model paths (after /api/v3/) -> their body model.
MODELS: dict[str, type[_Common]] = {
    "wavespeed-ai/infinitetalk": ImageToVideo,
    "wavespeed-ai/infinitetalk/video-to-video": VideoToVideo,
    "wavespeed-ai/infinitetalk/multi": Multi,
    # WaveSpeed's "half the cost" family: the same fields, our fast sampling mode (``to_payload(fast=True)``)
    "wavespeed-ai/infinitetalk-fast": ImageToVideo,
    "wavespeed-ai/infinitetalk-fast/multi": Multi,
    "wavespeed-ai/infinitetalk-fast/video-to-video-multi": VideoToVideoMulti,
}
FAST_PREFIX = "wavespeed-ai/infinitetalk-fast"
NAMES = {"image": "image", "video": "video", "audio": "audio", "audio.0": "left_audio", "audio.1": "right_audio",
         "mask": "mask_image", "mask.0": "mask_image"}


class UploadTicketRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    filename: str = "upload"
    size: int | None = None
    content_type: str | None = None


def envelope(data: dict | None, *, code: int = 200, message: str = "success") -> dict:
    return {"code": code, "message": message, "data": data}


def prediction(task: Task, public: TaskPublic, base_url: str) -> dict:
    status = STATES[task.state]
    error = ""
    if task.state is TaskStatus.FAILED:
        error = common.failure_text(task)
    elif task.state is TaskStatus.CANCELED:
        error = "the task was canceled"
    return {
        "id": task.id,
        "model": model_of(task),
        "outputs": common.video_urls(public),
        "urls": {"get": f"{base_url}/api/v3/predictions/{task.id}/result"},
        "has_nsfw_contents": common.nsfw_flags(task),  # empty: no checker looked (see tasks.safety)
        "status": status,
        "created_at": common.iso(task.created_at),
        "error": error,
        "timings": {"inference": common.ms_between(task.started_at, task.finished_at)},
    }


def is_fast(model: str) -> bool:
    return model == FAST_PREFIX or model.startswith(FAST_PREFIX + "/")


def model_of(task: Task) -> str:
    """The model path a task was submitted to, from its request (the routes store no path of their own)."""
    request = task.request or {}
    two, fast = len(request.get("audio") or []) > 1, request.get("sampling") == "fast"
    if request.get("mode") == "video-to-video":
        # WaveSpeed sells no one-speaker fast dubbing: such a task (from our own API) shows as the plain route
        return f"{FAST_PREFIX}/video-to-video-multi" if fast and two else "wavespeed-ai/infinitetalk/video-to-video"
    if fast:
        return f"{FAST_PREFIX}/multi" if two else FAST_PREFIX
    return "wavespeed-ai/infinitetalk/multi" if two else "wavespeed-ai/infinitetalk"


# --- The OpenAPI schema: the requests and answers as WaveSpeed documents them (the models above stay lenient;
# these only describe). ---

class _CommonDoc(BaseModel):
    prompt: str | None = Field(None, description="The positive prompt for the generation.")
    resolution: Literal["480p", "720p"] = Field("480p", description="The resolution of the output video.")
    seed: int = Field(-1, ge=-1, le=2147483647, description="-1 means a random seed will be used.")
    enable_sync_mode: bool = Field(False, description="Answer once the task has ended instead of at once.")


class ImageToVideoRequest(_CommonDoc):
    audio: str = Field(description="The audio for generating the output.")
    image: str = Field(description="The image for generating the output.")
    mask_image: str | None = Field(None, description="Optional mask image to specify the person in the image to "
                                                     "animate.")


class VideoToVideoRequest(_CommonDoc):
    audio: str = Field(description="The audio for generating the output.")
    video: str = Field(description="The video whose speaker is re-animated.")
    mask_image: str | None = Field(None, description="Optional mask image to specify the person to animate.")


class MultiRequest(_CommonDoc):
    image: str = Field(description="A picture of two people.")
    left_audio: str = Field(description="What the person on the left says.")
    right_audio: str = Field(description="What the person on the right says.")
    order: Literal["meanwhile", "left_right", "right_left"] = Field(
        "meanwhile", description="Together, or one after the other.")


class VideoToVideoMultiRequest(_CommonDoc):
    video: str = Field(description="A video of two people, whose mouths are re-animated.")
    left_audio: str = Field(description="What the person on the left says.")
    right_audio: str = Field(description="What the person on the right says.")
    order: Literal["meanwhile", "left_right", "right_left"] = Field(
        "meanwhile", description="Together, or one after the other.")


#: Model paths -> their documented request (the order of MODELS).
REQUESTS: dict[str, type[BaseModel]] = {
    "wavespeed-ai/infinitetalk": ImageToVideoRequest,
    "wavespeed-ai/infinitetalk/video-to-video": VideoToVideoRequest,
    "wavespeed-ai/infinitetalk/multi": MultiRequest,
    "wavespeed-ai/infinitetalk-fast": ImageToVideoRequest,
    "wavespeed-ai/infinitetalk-fast/multi": MultiRequest,
    "wavespeed-ai/infinitetalk-fast/video-to-video-multi": VideoToVideoMultiRequest,
}


class Urls(BaseModel):
    get: str = Field(description="URL to retrieve the prediction result.")


class Timings(BaseModel):
    inference: int | None = Field(None, description="Inference time in milliseconds.")


class Prediction(BaseModel):
    id: str = Field(description="Unique identifier for the prediction, Task Id.")
    model: str
    outputs: list[str] = Field(description="URLs of the generated content (empty when status is not completed).")
    urls: Urls
    has_nsfw_contents: list[bool] = Field(description="One flag per output that a safety checker looked at.")
    status: Literal["created", "processing", "completed", "failed"]
    created_at: str = Field(description="ISO timestamp, e.g. 2023-04-01T12:34:56.789Z.")
    error: str = Field(description="Error message (empty if no error occurred).")
    timings: Timings


class PredictionAnswer(BaseModel):
    code: int = Field(description="HTTP status code (e.g., 200 for success).")
    message: str = Field(description='Status message (e.g., "success").')
    data: Prediction


class UploadInstruction(BaseModel):
    method: Literal["PUT"]
    url: str
    headers: dict[str, str]


class UploadTicket(BaseModel):
    upload: UploadInstruction
    download_url: str = Field(description="Use as an input URL once the PUT is done.")
    expires_at: str


class UploadTicketAnswer(BaseModel):
    code: int
    message: str
    data: UploadTicket


class UploadedSize(BaseModel):
    size: int


class UploadedAnswer(BaseModel):
    code: int
    message: str
    data: UploadedSize


class BinaryUpload(BaseModel):
    type: Literal["file"]
    download_url: str
    filename: str
    size: int


class BinaryUploadAnswer(BaseModel):
    code: int
    message: str
    data: BinaryUpload


class ErrorAnswer(BaseModel):
    code: int = Field(description="The HTTP status again.")
    message: str = Field(description="What was wrong and how to fix it.")
    data: None = None


#: The errors this server answers in WaveSpeed's envelope (WaveSpeed's page documents only `code`).
ERRORS: dict[int | str, tuple[str, type[BaseModel] | None]] = {
    400: ("Invalid request: a missing or bad field, an input that cannot be fetched or read, a file too large",
          ErrorAnswer),
    401: ("Missing or invalid API key", ErrorAnswer),
    402: ("The key's balance does not cover the price", ErrorAnswer),
    403: ("The key may not use this model", ErrorAnswer),
    404: ("Unknown model, prediction or upload", ErrorAnswer),
    429: ("Rate or concurrency limit; see Retry-After", ErrorAnswer),
    500: ("Server error", None),
    503: ("The server's task store or disk is busy; retry after Retry-After", ErrorAnswer),
}
