"""APIXO's wire format for InfiniteTalk (``apixo-infinitetalk-api.txt``) and its mapping to GenerationRequest."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict

from infinitetalk.api.compat import common
from infinitetalk.errors import InvalidRequest
from infinitetalk.tasks.models import Task, TaskStatus
from infinitetalk.tasks.schemas import TaskPublic

#: Model IDs in the path -> the mode they run. APIXO's InfiniteTalk is image-to-video only.
MODELS = {"infinitetalk": "image-to-video"}
#: APIXO sells these two of our resolutions.
RESOLUTIONS = ("480p", "720p")

#: Canonical field -> APIXO's name, for error messages.
NAMES = {"image": "input.image_urls.0", "mask": "input.image_urls.1", "mask.0": "input.image_urls.1",
         "audio": "input.audio_urls.0", "prompt": "input.prompt", "seed": "input.seed",
         "resolution": "input.resolution", "callback_url": "callback_url"}
#: APIXO's documented validation messages ("Common validation issues").
MESSAGES = {
    "seed": "input.seed must be an integer from -1 to 2147483647",
    "prompt": "input.prompt is optional, but cannot be blank if present; remove the field or send a non-empty string",
}

#: Provider failure labels (``common.failure_label``) -> APIXO's documented codes ("Task failure codes").
FAIL_CODES = {"NoFaceDetected": "BadRequest", "InternalError": "Unknown error", None: "Unknown error"}
STATES = {TaskStatus.QUEUED: "pending", TaskStatus.RUNNING: "processing", TaskStatus.SUCCEEDED: "success",
          TaskStatus.FAILED: "failed", TaskStatus.CANCELED: "failed"}


class ApixoInput(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mode: str | None = None
    image_urls: list[str] = []
    audio_urls: list[str] = []
    prompt: str | None = None
    seed: int | None = None
    resolution: str = "480p"


class GenerateTask(BaseModel):
    model_config = ConfigDict(extra="ignore")
    request_type: Literal["async", "callback"] = "async"
    callback_url: str | None = None
    input: ApixoInput

    def to_payload(self, mode: str) -> dict:
        """The canonical request; only APIXO's own rules are checked here, the rest by GenerationRequest."""
        given = self.input
        if given.mode != mode:
            raise InvalidRequest(f"input.mode must be {mode}", field="input.mode")
        if len(given.image_urls) not in (1, 2):
            raise InvalidRequest("input.image_urls must hold 1 or 2 image URLs: the portrait first, then the "
                                 "optional mask", field="input.image_urls")
        if len(given.audio_urls) != 1:
            raise InvalidRequest("input.audio_urls must hold exactly 1 MP3, WAV or M4A URL", field="input.audio_urls")
        if given.resolution not in RESOLUTIONS:
            raise InvalidRequest(f"input.resolution must be one of {', '.join(RESOLUTIONS)}",
                                 field="input.resolution")
        if self.request_type == "callback" and not self.callback_url:
            raise InvalidRequest("callback_url is required when request_type is callback", field="callback_url")
        payload: dict = {"mode": mode, "image": given.image_urls[0], "audio": given.audio_urls,
                         "resolution": given.resolution}
        if len(given.image_urls) == 2:
            payload["mask"] = [given.image_urls[1]]
        for name in ("prompt", "seed"):
            if getattr(given, name) is not None:
                payload[name] = getattr(given, name)
        if self.request_type == "callback":
            payload["callback_url"] = self.callback_url
        return payload


def envelope(data: dict | None, *, code: int = 200, message: str = "success") -> dict:
    return {"code": code, "message": message, "data": data}


def task_data(task: Task, public: TaskPublic, model: str = "infinitetalk") -> dict:
    """``data`` of the status response (and of the callback): only the fields APIXO documents as present."""
    data: dict = {"taskId": task.id, "model": model, "state": STATES[task.state],
                  "createTime": common.epoch_ms(task.created_at)}
    if task.state is TaskStatus.SUCCEEDED:
        data["resultJson"] = json.dumps({"resultUrls": [output.url for output in public.outputs]})
        data["costTime"] = common.ms_between(task.started_at, task.finished_at)
    if task.state in (TaskStatus.FAILED, TaskStatus.CANCELED):
        label = common.failure_label(task)
        data["failCode"] = FAIL_CODES.get(label, label)
        data["failMsg"] = task.error_message or "the task was canceled"
    if task.finished_at:
        data["completeTime"] = common.epoch_ms(task.finished_at)
    return data
