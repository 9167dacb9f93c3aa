"""APIXO's wire format for InfiniteTalk (``apixo-infinitetalk-api.txt``) and its mapping to GenerationRequest."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    #: APIXO routes a task to one of its backends ("auto" or a named one); this server is the one backend, so
    #: any value is accepted and ignored.
    provider: str | None = None
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
        data["resultJson"] = json.dumps({"resultUrls": common.video_urls(public)})
        data["costTime"] = common.ms_between(task.started_at, task.finished_at)
    if task.state in (TaskStatus.FAILED, TaskStatus.CANCELED):
        label = common.failure_label(task)
        data["failCode"] = FAIL_CODES.get(label, label)
        data["failMsg"] = task.error_message or "the task was canceled"
    if task.finished_at:
        data["completeTime"] = common.epoch_ms(task.finished_at)
    return data


# --- The OpenAPI schema: the request and answers as APIXO documents them (the models above stay lenient and
# answer with APIXO's own messages; these only describe). ---

class InputDoc(BaseModel):
    mode: Literal["image-to-video"] = Field(description="InfiniteTalk's one mode.")
    image_urls: list[str] = Field(min_length=1, max_length=2, description="The source portrait's URL first, then "
                                  "an optional mask image's URL.")
    audio_urls: list[str] = Field(min_length=1, max_length=1, description="Exactly 1 public HTTP(S) MP3, WAV or M4A "
                                  "URL; up to 128 MB and 600 seconds.")
    prompt: str | None = Field(None, min_length=1, description="Optional, but not blank when present.")
    seed: int | None = Field(None, ge=-1, le=2147483647, description="-1 or an integer up to 2147483647.")
    resolution: Literal["480p", "720p"] = "480p"


class GenerateTaskRequest(BaseModel):
    request_type: Literal["async", "callback"] = Field(
        "async", description="`async`: poll statusTask; `callback`: the final status is also POSTed to callback_url.")
    callback_url: str | None = Field(None, description="Required when request_type is callback.")
    provider: str | None = Field(None, description="APIXO's backend choice (`auto` or a named backend). Accepted "
                                                   "and ignored: this server is the one backend.")
    input: InputDoc


class TaskIdData(BaseModel):
    taskId: str


class SubmitAnswer(BaseModel):
    code: int = Field(description="200: the task was accepted.")
    message: str
    data: TaskIdData


class TaskData(BaseModel):
    taskId: str
    model: str
    state: Literal["pending", "processing", "success", "failed"]
    resultJson: str | None = Field(None, description='JSON string `{"resultUrls": [...]}`; present when state is '
                                                     "success.")
    failCode: str | None = Field(None, description="Present when state is failed: SensitiveContent, PromptInvalid, "
                                                   "RateLimited, Timeout, MissingParameter, BadRequest, Unknown error.")
    failMsg: str | None = Field(None, description="Present when state is failed.")
    createTime: int = Field(description="Unix milliseconds.")
    completeTime: int | None = Field(None, description="Unix milliseconds; present after completion.")
    costTime: int | None = Field(None, description="Milliseconds; present after successful completion.")


class StatusAnswer(BaseModel):
    code: int
    message: str
    data: TaskData


class ErrorAnswer(BaseModel):
    code: int = Field(description="The HTTP status again.")
    message: str = Field(description="What was wrong and how to fix it.")
    data: None = None


#: APIXO's "HTTP errors" table (404 and 503 are this server's: unknown task or model; store or disk busy).
ERRORS: dict[int | str, tuple[str, type[BaseModel] | None]] = {
    400: ("Invalid request body, unsupported mode, invalid parameter type or value, unreachable URL, or audio probe "
          "failure", ErrorAnswer),
    401: ("Missing or invalid API key", ErrorAnswer),
    402: ("Insufficient balance or quota", ErrorAnswer),
    403: ("Key or route cannot access the model", ErrorAnswer),
    404: ("Unknown model or taskId", ErrorAnswer),
    429: ("Rate limit or concurrency limit reached; see Retry-After", ErrorAnswer),
    500: ("Server error", None),
    502: ("Upstream service error (APIXO's; this server has no upstream)", None),
    503: ("The server's task store or disk is busy; retry after Retry-After", ErrorAnswer),
    504: ("Upstream timeout (APIXO's; this server has no upstream)", None),
}
