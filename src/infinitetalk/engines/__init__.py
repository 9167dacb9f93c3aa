"""Engines behind one small interface (``base.Engine``); pick one with ``load_engine``.

Engines are imported lazily: the preview engine must not pay for importing torch.
"""

from __future__ import annotations

from pathlib import Path

from infinitetalk.config import Settings, get_settings
from infinitetalk.engines.base import CancelToken, Engine, EngineJob, ProgressCallback, Speaker
from infinitetalk.errors import InvalidRequest

#: "instant" makes solid frames at no cost: for API tests and load benchmarks, never for users.
ENGINES = ("auto", "preview", "neural", "instant")


def load_engine(settings: Settings | None = None, *, name: str | None = None, weights_dir: Path | None = None,
                warm: bool = True) -> Engine:
    """The engine named (or configured): "neural" when weights are given and name is "auto".

    ``warm=False`` skips the compile warm-up: the ranks of a ``--gpus`` job warm up once they share forwards.
    """
    settings = settings or get_settings()
    name = name or settings.engine
    weights_dir = weights_dir or settings.weights_dir
    if name not in ENGINES:
        raise InvalidRequest(f"unknown engine '{name}'; choose one of {', '.join(ENGINES)}", field="engine")
    if name == "auto":
        name = "neural" if weights_dir else "preview"
    if name == "instant":
        from infinitetalk.engines.instant import InstantEngine

        return InstantEngine()
    if name == "preview":
        from infinitetalk.engines.preview.engine import PreviewEngine

        return PreviewEngine()
    if weights_dir is None:
        raise InvalidRequest(
            "the neural engine needs its weights: pass --weights DIR (see `infinitetalk models download`)",
            field="weights",
        )
    from infinitetalk.engines.neural.caching import StepCache
    from infinitetalk.engines.neural.engine import NeuralEngine
    from infinitetalk.engines.neural.pipeline import SAMPLING_MODES
    from infinitetalk.engines.neural.speed import SpeedOptions

    engine = NeuralEngine.from_pretrained(
        weights_dir, variant=settings.neural_variant, offload=settings.neural_offload,
        options=SAMPLING_MODES[settings.neural_mode], loras=_loras(settings, weights_dir),
        speed=SpeedOptions.from_settings(settings), step_cache=StepCache.from_settings(settings),
        gpu_memory_gb=settings.neural_gpu_memory_gb,
    )
    if warm and settings.neural_compile:  # once per process (worker, server), not per task: the 480p square bucket
        from infinitetalk.engines.neural.speed import warm_up

        warm_up(engine)
    return engine


def _loras(settings: Settings, weights_dir: Path) -> dict[Path, float]:
    """The LoRA to merge, found; the fast modes refuse to start without one (4 steps of the base model are noise)."""
    if settings.neural_lora is None:
        if settings.neural_mode != "quality":
            raise InvalidRequest(
                f"neural_mode={settings.neural_mode} samples 4 steps: it needs a step-distilled LoRA. Set "
                "INFINITETALK_NEURAL_LORA to the lightx2v .safetensors (a path, or its name in the weights folder's "
                "loras/), or use neural_mode=quality", field="neural_lora")
        return {}
    found = [p for p in (settings.neural_lora, Path(weights_dir) / "loras" / settings.neural_lora) if p.is_file()]
    if not found:
        raise InvalidRequest(f"neural_lora: no file {settings.neural_lora}, here or in the weights folder's loras/",
                             field="neural_lora")
    return {found[0]: settings.neural_lora_scale}


__all__ = ["CancelToken", "Engine", "EngineJob", "ProgressCallback", "Speaker", "load_engine"]
