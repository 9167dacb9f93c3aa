"""WaveSpeed's wire format for InfiniteTalk (``wavespeed-infinitetalk-api.txt``) and its mapping."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

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

    def _shared(self) -> dict:
        shared = {"resolution": self.resolution, "seed": self.seed}
        if self.prompt:  # the SDKs send "" for "no prompt"; ours refuses a blank one
            shared["prompt"] = self.prompt
        return shared


class ImageToVideo(_Common):
    image: str
    audio: str
    mask_image: str | None = None

    def to_payload(self) -> dict:
        mask = {"mask": [self.mask_image]} if self.mask_image else {}
        return {"mode": "image-to-video", "image": self.image, "audio": [self.audio], **mask, **self._shared()}


class VideoToVideo(_Common):
    video: str
    audio: str
    mask_image: str | None = None

    def to_payload(self) -> dict:
        mask = {"mask": [self.mask_image]} if self.mask_image else {}
        return {"mode": "video-to-video", "video": self.video, "audio": [self.audio], **mask, **self._shared()}


class Multi(_Common):
    """Two people in one picture: one track each, together ("meanwhile") or one after the other."""

    image: str
    left_audio: str
    right_audio: str
    order: Literal["meanwhile", "left_right", "right_left"] = "meanwhile"

    def to_payload(self) -> dict:
        audio = [self.right_audio, self.left_audio] if self.order == "right_left" else [self.left_audio,
                                                                                      self.right_audio]
        layout = "para" if self.order == "meanwhile" else "add"
        return {"mode": "image-to-video", "image": self.image, "audio": audio, "audio_layout": layout,
                **self._shared()}


#: Model paths (after /api/v3/) -> their body model.
MODELS: dict[str, type[_Common]] = {
    "wavespeed-ai/infinitetalk": ImageToVideo,
    "wavespeed-ai/infinitetalk/video-to-video": VideoToVideo,
    "wavespeed-ai/infinitetalk/multi": Multi,
}
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
        "outputs": [output.url for output in public.outputs],
        "urls": {"get": f"{base_url}/api/v3/predictions/{task.id}/result"},
        "has_nsfw_contents": common.nsfw_flags(task),  # empty: no checker looked (see tasks.safety)
        "status": status,
        "created_at": common.iso(task.created_at),
        "error": error,
        "timings": {"inference": common.ms_between(task.started_at, task.finished_at)},
    }


def model_of(task: Task) -> str:
    request = task.request or {}
    if request.get("mode") == "video-to-video":
        return "wavespeed-ai/infinitetalk/video-to-video"
    return "wavespeed-ai/infinitetalk/multi" if len(request.get("audio") or []) > 1 else "wavespeed-ai/infinitetalk"
