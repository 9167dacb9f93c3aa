"""A request's sampling mode (``GenerationRequest.sampling``, which WaveSpeed's ``infinitetalk-fast`` routes ask
for): a neural engine that has a step-distilled LoRA samples 4 steps for a "fast" job; without the LoRA (4 steps of
the base model are noise) it keeps its own mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infinitetalk.engines.base import EngineJob, Speaker
from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.pipeline import SamplingOptions
from infinitetalk.schema import GenerationRequest, Mode


def _job(**extras: object) -> EngineJob:
    return EngineJob(mode=Mode.IMAGE_TO_VIDEO, speakers=[Speaker(audio=np.zeros(3200, np.float32))], width=640,
                     height=640, fps=25, num_frames=5, seed=1, image=np.zeros((640, 640, 3), np.uint8),
                     extras=dict(extras))


@pytest.fixture(scope="module")
def engines(tiny_weights) -> dict:
    from safetensors.torch import save_file

    from infinitetalk.config import Settings
    from infinitetalk.engines import load_engine

    g = torch.Generator().manual_seed(3)
    down, up = torch.randn(2, TINY.dim, generator=g), torch.randn(TINY.dim, 2, generator=g)
    lora = tiny_weights.root.parent / "distill-sampling.safetensors"
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": down,
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": up}, str(lora))
    return {"plain": load_engine(Settings(weights_dir=tiny_weights.root)),
            "distilled": load_engine(Settings(weights_dir=tiny_weights.root, neural_lora=lora))}


def test_a_fast_job_samples_four_steps_on_an_engine_with_the_lora(engines: dict) -> None:
    distilled = engines["distilled"]
    assert distilled._options(_job()).steps == SamplingOptions().steps  # the engine's own mode (quality)
    fast = distilled._options(_job(sampling="fast"))
    assert (fast.steps, fast.shift, fast.guidance.passes) == (4, 2.0, 2)


def test_a_fast_job_keeps_the_engine_mode_without_the_lora(engines: dict) -> None:
    options = engines["plain"]._options(_job(sampling="fast"))
    assert (options.steps, options.shift) == (SamplingOptions().steps, 7.0)


def test_the_request_field_reaches_the_engine_job(tmp_path, grace_hopper_path, short_speech_wav) -> None:
    from infinitetalk.config import Settings
    from infinitetalk.render.inputs import prepare

    def job(**fields: object) -> EngineJob:
        request = GenerationRequest(image=str(grace_hopper_path), audio=[str(short_speech_wav)], **fields)
        return prepare(request, tmp_path, settings=Settings(data_dir=tmp_path), allow_local_paths=True).job

    assert job(sampling="fast").extras.get("sampling") == "fast"
    assert job().extras.get("sampling") in (None, "standard")
