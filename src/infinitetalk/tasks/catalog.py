"""What this server offers (GET /v1/models): one model per mode, with this server's prices and limits."""

from __future__ import annotations

from infinitetalk.config import Settings
from infinitetalk.schema import Mode, Resolution, limits
from infinitetalk.schema.buckets import output_size
from infinitetalk.tasks.billing import usd_per_second
from infinitetalk.tasks.models import ApiKey
from infinitetalk.tasks.schemas import ModelInfo, ModelList, ModelResolution

_ABOUT = {
    Mode.IMAGE_TO_VIDEO: ("A portrait and speech in, the portrait talking out.",
                          ["image", "audio", "audio_layout", "mask", "bbox", "prompt", "resolution", "seed", "fps",
                           "sampling"]),
    Mode.VIDEO_TO_VIDEO: ("A video and new speech in, the video with its mouth re-animated out (dubbing).",
                          ["video", "audio", "audio_layout", "mask", "bbox", "prompt", "resolution", "seed", "fps",
                           "sampling"]),
}


def model_id(mode: Mode) -> str:
    return f"infinitetalk/{mode.value}"


def catalog(settings: Settings, *, engine: str, key: ApiKey | None) -> ModelList:
    """Every model the caller's key may use (a key limited to some models sees only those)."""
    allowed = key.allowed_models if key is not None and key.allowed_models and "*" not in key.allowed_models else None
    resolutions = [
        ModelResolution(resolution=res, square_size="x".join(map(str, output_size(1, 1, res))),
                        usd_per_second=settings.rates[res.value],
                        usd_per_second_fast=usd_per_second(res.value, settings, fast=True))
        for res in Resolution if res.value in settings.rates
    ]
    models = []
    for mode, (description, inputs) in _ABOUT.items():
        if allowed is not None and model_id(mode) not in allowed:
            continue
        models.append(ModelInfo(
            id=model_id(mode), mode=mode.value, description=description, inputs=inputs, resolutions=resolutions,
            min_billed_seconds=settings.min_billed_seconds, max_audio_seconds=limits.MAX_AUDIO_SECONDS,
            max_speakers=2, fps=[limits.MIN_FPS, limits.DEFAULT_FPS, limits.MAX_FPS], engine=engine))
    return ModelList(data=models)
