"""Step caches for the many-step (quality) mode: diffusers' block caches on our transformer.

``enable_step_cache(transformer, kind, threshold, steps)`` attaches one of diffusers 0.42's caches
to the transformer's blocks, from outside, through its hook registry:

``first_block``  FirstBlockCache: block 0 always runs; when its residual changed by less than
                 ``threshold`` (relative mean absolute change) since the last full step, the other
                 blocks are skipped and their last residual is reused. Typical 0.03-0.1.
``magcache``     MagCache: skips every block while the error accumulated from the model's
                 magnitude ratios stays under ``threshold`` (typical 0.02-0.12), at most 3 steps in a
                 row, never in the first 20% of the steps. The ratios are the model's own: unless
                 ``mag_ratios`` is given, the first denoising run after enabling computes every block
                 and measures them (diffusers' calibration), and later runs use them.
``taylorseer``   TaylorSeer (lite): every ``threshold``-th step (an interval: 2-6) runs the model and
                 the others predict its output from a first-order Taylor expansion over steps; the
                 blocks are skipped (0 or 1: never predicted).

The pipeline calls the transformer without diffusers' ``cache_context`` and each 81-frame chunk is a
fresh denoising run, so a hook on the transformer keeps the caches' bookkeeping:
- a call whose timestep is higher than the previous call's starts a new run: every cache state is
  reset, so nothing from one chunk (or job) is reused in the next;
- a call with the same timestep and the same input as the previous call is the next guidance pass of
  that step (the pass-at-a-time mode used with offload); each pass number keeps its own cache state
  (context ``pass0``, ``pass1``, ...), as diffusers keeps "cond" and "uncond" apart. The same timestep
  with a different input is a new run (a job that starts right after one canceled at its first step).
Batched passes are one call: the cache decides for all of them at once.

With regional compile (``compile_repeated_blocks``) FirstBlockCache and TaylorSeer keep compiled
blocks; MagCache's hooks are ``torch.compiler.disable``d around the block forward, so its blocks
run eagerly (checked on the CPU with a graph-counting backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, MagCacheConfig, ModelHook, TaylorSeerCacheConfig
from diffusers.hooks.hooks import CacheContext
from diffusers.hooks.mag_cache import _MAG_CACHE_BLOCK_HOOK

from infinitetalk.config import Settings

STEP_CACHE_KINDS = ("first_block", "magcache", "taylorseer")
#: The threshold a kind gets when none is given (see benchmarks/step_cache.py for what they cost).
DEFAULT_THRESHOLDS = {"first_block": 0.05, "magcache": 0.06, "taylorseer": 3.0}

_TRACKER = "infinitetalk_step_cache_runs"
_COUNTER = "infinitetalk_step_cache_block_count"
#: The leading fraction of a run's steps that always runs in full (MagCache's default retention).
_WARMUP = 0.2
#: MagCache ratios a transformer measured, per step count: they outlive disable/enable (one calibration
#: run per worker and step count, not one per job).
_RATIOS_ATTR = "_infinitetalk_mag_ratios"


@dataclass
class _Counts:
    calls: int = 0  # transformer forwards
    runs: int = 0  # denoising runs (chunks) seen
    block_runs: int = 0  # block forwards actually computed


class _BlockCounter(ModelHook):
    """Sits under the cache hooks of one block, so it only sees the forwards they let through."""

    def __init__(self, counts: _Counts) -> None:
        super().__init__()
        self.counts = counts

    # Not traced: under torch.compile a Python counter would be a guard, and every call a recompile.
    @torch.compiler.disable
    def pre_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        self.counts.block_runs += 1
        return args, kwargs


class _RunTracker(ModelHook):
    """On the transformer: finds run and pass boundaries from the timesteps and sets the cache context."""

    def __init__(self, kind: str, threshold: float, steps: int, calibrate: bool) -> None:
        super().__init__()
        self.kind, self.threshold, self.steps = kind, threshold, steps
        self.counts = _Counts()
        self.calibrating = calibrate
        self.mag_ratios: list[float] | None = None
        self._last_t: float | None = None
        self._last_input: torch.Tensor | None = None
        self.step = self.pass_index = self.passes = 0

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        timestep = kwargs["timestep"] if "timestep" in kwargs else args[1]
        t = float(timestep.flatten()[0])
        prev = self._last_t
        next_pass = t == prev and (hidden is self._last_input or _same(hidden, self._last_input))
        if prev is None or t > prev or (t == prev and not next_pass):
            self._new_run(module)
        elif next_pass:
            self.pass_index += 1
        else:
            self.step, self.pass_index = self.step + 1, 0
        self.passes = max(self.passes, self.pass_index + 1)
        self._last_t, self._last_input = t, hidden
        self.counts.calls += 1
        with module.cache_context(
            f"pass{self.pass_index}", step_index=self.step, num_inference_steps=self.steps, timestep=t
        ):
            return self.fn_ref.original_forward(*args, **kwargs)

    def _new_run(self, module: torch.nn.Module) -> None:
        if self.calibrating and self.counts.runs and self.step + 1 >= self.steps:
            self._finish_calibration(module)
        HookRegistry.check_if_exists_or_initialize(module).reset_stateful_hooks(recurse=True)
        self.counts.runs += 1
        self.step = self.pass_index = 0

    def _finish_calibration(self, module: torch.nn.Module) -> None:
        """Average the ratios each pass measured in the run that just ended, and start skipping with them."""
        manager = module.blocks[-1]._diffusers_hook.get_hook(_MAG_CACHE_BLOCK_HOOK).state_manager
        measured = []
        for p in range(self.passes):
            manager.set_context(CacheContext(f"pass{p}"))
            measured.append(manager.get_state().calibration_ratios[: self.steps])
        manager.set_context(None)
        self.mag_ratios = torch.tensor(measured, dtype=torch.float64).mean(0).tolist()
        getattr(module, _RATIOS_ATTR)[self.steps] = self.mag_ratios
        module.disable_cache()
        module.enable_cache(_config("magcache", self.threshold, self.steps, self.mag_ratios))
        self.calibrating = False


def _same(a: torch.Tensor, b: torch.Tensor | None) -> bool:
    return b is not None and a.shape == b.shape and a.device == b.device and torch.equal(a, b)


def _config(kind: str, threshold: float, steps: int, mag_ratios: Sequence[float] | None):
    warmup = max(1, round(_WARMUP * steps))
    if kind == "first_block":
        return FirstBlockCacheConfig(threshold=threshold)
    if kind == "magcache":
        if mag_ratios is None:
            # One step more than the run has: diffusers would otherwise print the ratios and wipe them
            # at the run's last step, before we read them at the start of the next run.
            return MagCacheConfig(calibrate=True, num_inference_steps=steps + 1)
        return MagCacheConfig(
            threshold=threshold, num_inference_steps=steps, mag_ratios=list(mag_ratios), retention_ratio=_WARMUP
        )
    # Lite mode: the blocks are skipped and only proj_out's output (16 channels per token) is
    # extrapolated, so the Taylor factors cost a few MB instead of 40 blocks' hidden states.
    return TaylorSeerCacheConfig(
        cache_interval=max(1, round(threshold)),
        disable_cache_before_step=warmup,
        taylor_factors_dtype=torch.float32,
        use_lite_mode=True,
    )


@dataclass(frozen=True)
class StepCache:
    """Which step cache a neural engine puts on its many-step jobs (settings ``neural_step_cache[_threshold]``)."""

    #: Fewer steps than this (the 4-step fast modes): no cache; each step moves the latents too far to reuse.
    MIN_STEPS: ClassVar[int] = 10

    kind: str
    threshold: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> StepCache | None:
        if settings.neural_step_cache == "none":
            return None
        return cls(settings.neural_step_cache, settings.neural_step_cache_threshold)


def enable_step_cache(
    transformer: torch.nn.Module,
    kind: str,
    threshold: float | None,
    steps: int,
    *,
    mag_ratios: Sequence[float] | None = None,
) -> None:
    """Attach a step cache (``kind`` in ``STEP_CACHE_KINDS``) to ``transformer`` for ``steps``-step runs.

    Replaces a cache enabled before. ``threshold`` None: ``DEFAULT_THRESHOLDS[kind]``; 0 computes
    every block, and the output equals the uncached one. ``steps`` must be the pipeline's step count
    (MagCache indexes its ratios by step; TaylorSeer's warm-up is the first 20% of them).
    ``mag_ratios``: MagCache ratios measured before (``cache_stats(...)["mag_ratios"]``); without them
    the ratios this transformer measured for ``steps`` are used, or else its next run calibrates.
    """
    if kind not in STEP_CACHE_KINDS:
        raise ValueError(f"unknown step cache {kind!r}; choose one of {', '.join(STEP_CACHE_KINDS)}")
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[kind]
    if threshold < 0:
        raise ValueError(f"the step cache threshold must be 0 or more, got {threshold}")
    if steps < 2:
        raise ValueError(f"a step cache reuses earlier steps, so it needs 2 or more steps per run, got {steps}")
    if mag_ratios is not None and len(mag_ratios) < 2:
        raise ValueError("mag_ratios needs one ratio per step (at least 2); leave it out to calibrate")
    if kind != "taylorseer" and getattr(transformer, "parallel_forward", None) is not None:
        # first_block decides from each rank's own slice of the tokens, magcache from ratios each rank measured
        # itself: ranks that skip different blocks hang in their collectives. TaylorSeer decides by step number.
        raise ValueError(f"the {kind} step cache cannot run one job across several GPUs; use taylorseer")
    disable_step_cache(transformer)
    if not hasattr(transformer, _RATIOS_ATTR):
        setattr(transformer, _RATIOS_ATTR, {})
    if kind == "magcache" and mag_ratios is None:
        mag_ratios = getattr(transformer, _RATIOS_ATTR).get(steps)
    counts = _Counts()
    for block in transformer.blocks:  # registered before the cache hooks, so it sits beneath them
        HookRegistry.check_if_exists_or_initialize(block).register_hook(_BlockCounter(counts), _COUNTER)
    calibrate = kind == "magcache" and mag_ratios is None
    transformer.enable_cache(_config(kind, threshold, steps, mag_ratios))
    tracker = _RunTracker(kind, threshold, steps, calibrate)
    tracker.counts = counts
    tracker.mag_ratios = list(mag_ratios) if mag_ratios is not None else None
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.register_hook(tracker, _TRACKER)
    registry.invalidate_child_registries_cache()


def disable_step_cache(transformer: torch.nn.Module) -> None:
    """Remove the step cache and its bookkeeping (a no-op when none is enabled)."""
    if transformer.is_cache_enabled:
        transformer.disable_cache()
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    registry.remove_hook(_TRACKER, recurse=False)
    for block in transformer.blocks:
        if hasattr(block, "_diffusers_hook"):
            block._diffusers_hook.remove_hook(_COUNTER, recurse=False)
    registry.invalidate_child_registries_cache()


def cache_stats(transformer: torch.nn.Module) -> dict[str, Any]:
    """What the cache did since it was enabled: forwards, runs, block computations run and skipped.

    Empty when no step cache is enabled. ``mag_ratios`` are MagCache's ratios once known (give them
    to ``enable_step_cache`` to skip the calibration run next time).
    """
    registry = getattr(transformer, "_diffusers_hook", None)
    tracker = registry.get_hook(_TRACKER) if registry is not None else None
    if tracker is None:
        return {}
    c = tracker.counts
    total = c.calls * len(transformer.blocks)
    return {
        "kind": tracker.kind,
        "threshold": tracker.threshold,
        "steps": tracker.steps,
        "calls": c.calls,
        "runs": c.runs,
        "block_runs": c.block_runs,
        "block_skips": total - c.block_runs,
        "skipped_fraction": (total - c.block_runs) / total if total else 0.0,
        "calibrating": tracker.calibrating,
        "mag_ratios": tracker.mag_ratios,
    }
