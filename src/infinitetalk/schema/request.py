"""GenerationRequest: the one request every entry point builds and every engine consumes.

Media fields hold *references*: a local path, an http(s) URL or a ``data:`` URI. They are
resolved and decoded by ``infinitetalk.media``; this module only checks their shape.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from infinitetalk.errors import InvalidRequest
from infinitetalk.schema import limits


class Mode(StrEnum):
    IMAGE_TO_VIDEO = "image-to-video"
    VIDEO_TO_VIDEO = "video-to-video"


class Resolution(StrEnum):
    P480 = "480p"
    P576 = "576p"
    P720 = "720p"


class AudioLayout(StrEnum):
    """How two speakers' tracks are laid out in time."""

    PARA = "para"  # both tracks play from the start, together
    ADD = "add"  # the second track starts where the first ends


class Sampling(StrEnum):
    """How many denoising steps a render takes; WaveSpeed's ``infinitetalk-fast`` routes ask for "fast"."""

    STANDARD = "standard"  # the engine's own mode (the neural_mode setting)
    FAST = "fast"  # 4 steps where the neural engine has a step-distilled LoRA; priced at the fast rate


MediaRef = Annotated[str, Field(min_length=1, description="Local path, http(s) URL or data: URI.")]


class BBox(BaseModel):
    """A face box in source-image pixels: x0, y0 (top-left) to x1, y1 (bottom-right).

    The official InfiniteTalk JSON files write a box row first (``[a, b, c, d]`` = top, left, bottom, right);
    as ours it is ``x0=b, y0=a, x1=d, y1=c``.
    """

    model_config = ConfigDict(frozen=True)
    x0: float
    y0: float
    x1: float
    y1: float

    @model_validator(mode="after")
    def _ordered(self) -> BBox:
        if self.x1 <= self.x0 or self.y1 <= self.y0:
            raise ValueError(f"box must have x1 > x0 and y1 > y0, got {self.x0},{self.y0},{self.x1},{self.y1}")
        return self


class GenerationRequest(BaseModel):
    """A request to make one talking video."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field(Mode.IMAGE_TO_VIDEO, description="Left out: video-to-video when a video is given, "
                                                         "else image-to-video.")
    image: MediaRef | None = Field(None, description="Portrait to animate (image-to-video).")
    video: MediaRef | None = Field(None, description="Source video to re-animate (video-to-video).")
    audio: list[MediaRef] = Field(
        ..., min_length=1, max_length=2, description="Speech, one track per speaker (two for a dialogue)."
    )
    audio_layout: AudioLayout = AudioLayout.PARA
    mask: list[MediaRef] | None = Field(
        None, max_length=2, description="Mask image per speaker: white where the face to animate is."
    )
    bbox: list[BBox] | None = Field(None, max_length=2, description="Face box per speaker, in source pixels.")
    prompt: str | None = Field(None, max_length=limits.MAX_PROMPT_CHARS, description="What the scene shows.")
    resolution: Resolution = Resolution.P480
    seed: int = Field(-1, ge=-1, le=limits.MAX_SEED, description="-1 picks a random seed; the seed used is reported.")
    fps: int = Field(limits.DEFAULT_FPS, ge=limits.MIN_FPS, le=limits.MAX_FPS)
    sampling: Sampling = Field(Sampling.STANDARD, description="fast: 4 denoising steps on a neural engine that has a "
                               "step-distilled LoRA (other engines render as usual), billed at the fast rate.")

    @model_validator(mode="before")
    @classmethod
    def _infer_mode(cls, data: object) -> object:
        """The inputs say the mode: a caller who sent a video wants it dubbed, without also naming the mode."""
        if isinstance(data, dict) and data.get("mode") is None:
            if data.get("image") and data.get("video"):
                raise ValueError("give a portrait (image) or a source video (video), not both")
            if data.get("video"):
                return {**data, "mode": Mode.VIDEO_TO_VIDEO}
        return data

    @field_validator("audio", "mask", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("prompt is blank; leave it out or describe the scene")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GenerationRequest:
        # The mode was given (or inferred) and the inputs disagree: name the inputs, which every entry point
        # has (the CLI has --image and --video, but no mode of its own).
        if self.mode is Mode.IMAGE_TO_VIDEO and not self.image:
            raise ValueError("image-to-video needs an image (a portrait)"
                             + ("; leave mode out to dub the video" if self.video else ""))
        if self.mode is Mode.IMAGE_TO_VIDEO and self.video:
            raise ValueError("image-to-video takes an image, not also a video; send one of them")
        if self.mode is Mode.VIDEO_TO_VIDEO and not self.video:
            raise ValueError("video-to-video needs a video (the source to dub)"
                             + ("; leave mode out to animate the image" if self.image else ""))
        if self.mode is Mode.VIDEO_TO_VIDEO and self.image:
            raise ValueError("video-to-video takes a video, not also an image; send one of them")
        speakers = len(self.audio)
        for name in ("mask", "bbox"):
            given = getattr(self, name)
            if given is not None and len(given) != speakers:
                raise ValueError(
                    f"{len(given)} {name}(es) for {speakers} audio track(s): give one {name} per speaker"
                )
        return self

    @property
    def speakers(self) -> int:
        return len(self.audio)

    def resolved_seed(self) -> int:
        """The seed to use: the requested one, or a fresh random one for -1."""
        return self.seed if self.seed >= 0 else secrets.randbelow(limits.MAX_SEED + 1)

    @classmethod
    def parse(cls, data: dict) -> GenerationRequest:
        """Validate ``data``, turning pydantic's errors into one InvalidRequest naming the field."""
        from pydantic import ValidationError

        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest.from_errors(exc.errors()) from None
