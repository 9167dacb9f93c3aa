"""Step caches on the tiny transformer, driven by the pipeline's own guidance passes over several chunks.

The sampling loop is the pipeline's (``InfiniteTalkPipeline.predict``, the flow-match Euler step, the
clean first latent frame imposed after every step) without the VAE and encoders; each chunk is a fresh
denoising run from t=1000, as in ``generate``. Tolerance at a working threshold: the final latents stay
within 40 dB PSNR (peak = the uncached latents' range) of the uncached run.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.hooks import HookRegistry

from infinitetalk.engines.neural.caching import _TRACKER, cache_stats, disable_step_cache, enable_step_cache
from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.pipeline import InfiniteTalkPipeline, SamplingOptions
from infinitetalk.engines.neural.sampler import euler_step, sigma_schedule
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

STEPS = 20
WORKING = {"first_block": 0.1, "magcache": 0.06, "taylorseer": 3}
MIN_PSNR = 40.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny forwards gain nothing from a second thread, and on a shared CPU its spin-waiting made
    # these tests ~50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def model() -> InfiniteTalkTransformer:
    torch.manual_seed(0)
    m = InfiniteTalkTransformer.from_model_config(TINY).eval()
    yield m
    disable_step_cache(m)


def _chunk_inputs(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "text": torch.randn(1, 512, TINY.text_dim, generator=g),
        "negative": torch.randn(1, 512, TINY.text_dim, generator=g),
        "clip": torch.randn(1, 5, TINY.image_dim, generator=g),
        "audio": torch.randn(1, 81, 5, TINY.audio_layers, TINY.audio_dim, generator=g),
        "cond": torch.randn(1, 20, 21, 4, 4, generator=g),
        "noise": torch.randn(1, 16, 21, 4, 4, generator=g),
    }


@torch.no_grad()
def sample(
    model, seeds=(1, 2), steps: int = STEPS, batch_passes: bool = True, wrap=None, stop: int | None = None
) -> torch.Tensor:
    """Final latents of one denoising run per seed (a chunk each), 3 guidance passes per step;
    ``stop``: end every run after that many steps (a canceled job)."""
    pipe = InfiniteTalkPipeline(model, None, None, None, None)  # only predict() is used: no VAE, no encoders
    opts = SamplingOptions(steps=steps, batch_passes=batch_passes)
    sigmas = sigma_schedule(steps, opts.shift).tolist()
    outs = []
    for seed in seeds:
        c = _chunk_inputs(seed)
        texts = [c["text"], c["negative"], c["negative"]]
        audios = [c["audio"], c["audio"], torch.zeros_like(c["audio"])]
        x, clean = c["noise"].clone(), c["cond"][:, 4:, :1]
        x[:, :, :1] = clean
        for i in range(steps if stop is None else stop):
            t = sigmas[i] * 1000

            def call(x=x, t=t, c=c, texts=texts, audios=audios):
                return pipe.predict(x, c["cond"], t, texts, audios, c["clip"], opts, None)

            v = wrap(call) if wrap else call()
            x = euler_step(x, v, sigmas[i], sigmas[i + 1])
            x[:, :, :1] = clean
        outs.append(x)
    return torch.cat(outs)


def psnr(out: torch.Tensor, ref: torch.Tensor) -> float:
    mse = (out - ref).pow(2).mean()
    return float("inf") if mse == 0 else float(10 * torch.log10((ref.max() - ref.min()) ** 2 / mse))


def _calibrated_ratios(model) -> list[float]:
    """MagCache's ratios, measured by the cache itself on a first run (another seed than the tests use)."""
    enable_step_cache(model, "magcache", 0.0, STEPS)
    sample(model, seeds=(9,))
    assert cache_stats(model)["calibrating"] and cache_stats(model)["block_skips"] == 0  # calibration skips nothing
    sample(model, seeds=(9,))  # the next run starts with the measured ratios
    stats = cache_stats(model)
    assert not stats["calibrating"] and len(stats["mag_ratios"]) == STEPS
    enable_step_cache(model, "magcache", 0.0, STEPS)  # enabled again (the next job): measured once per model
    assert not cache_stats(model)["calibrating"] and cache_stats(model)["mag_ratios"] == stats["mag_ratios"]
    return stats["mag_ratios"]


@pytest.mark.parametrize("kind", ["first_block", "magcache", "taylorseer"])
def test_threshold_zero_equals_uncached(model, kind) -> None:
    reference = sample(model)
    if kind == "magcache":
        _calibrated_ratios(model)  # leaves MagCache enabled, past calibration
    else:
        enable_step_cache(model, kind, 0.0, STEPS)
    assert torch.equal(sample(model), reference)
    stats = cache_stats(model)
    assert stats["block_skips"] == 0 and stats["block_runs"] > 0
    assert stats["calls"] >= 2 * STEPS and stats["runs"] >= 2


@pytest.mark.parametrize("kind", ["first_block", "magcache", "taylorseer"])
def test_working_threshold_skips_blocks_and_stays_close(model, kind) -> None:
    reference = sample(model)
    ratios = _calibrated_ratios(model) if kind == "magcache" else None
    enable_step_cache(model, kind, WORKING[kind], STEPS, mag_ratios=ratios)
    out = sample(model)
    stats = cache_stats(model)
    assert stats["runs"] == 2 and stats["calls"] == 2 * STEPS
    assert stats["block_skips"] > 0 and stats["block_runs"] + stats["block_skips"] == 2 * STEPS * TINY.num_layers
    assert not torch.equal(out, reference)
    assert psnr(out, reference) >= MIN_PSNR


@pytest.mark.parametrize("kind", ["first_block", "magcache", "taylorseer"])
def test_no_state_leaks_from_one_run_into_the_next(model, kind) -> None:
    ratios = _calibrated_ratios(model) if kind == "magcache" else None
    threshold = WORKING[kind]
    enable_step_cache(model, kind, threshold, STEPS, mag_ratios=ratios)
    alone = sample(model, seeds=(2,))  # chunk 2 on a fresh cache
    enable_step_cache(model, kind, threshold, STEPS, mag_ratios=ratios)
    sample(model, seeds=(3,), stop=7)  # a job canceled after 7 steps
    after = sample(model, seeds=(1, 2))[1:]  # then chunk 2 right after chunk 1
    assert cache_stats(model)["runs"] == 3
    assert torch.equal(after, alone)

    if kind == "first_block":
        return  # its first step of a run never looks like the last one of the run before, so it recomputes
    # What the reset guards against: the same hooks without the tracker, under one fixed context (a
    # pipeline that never resets them), carry the earlier runs' state into chunk 2 and change it.
    HookRegistry.check_if_exists_or_initialize(model).remove_hook(_TRACKER, recurse=False)

    def in_context(call):
        with model.cache_context("pass0"):
            return call()

    sample(model, seeds=(3,), stop=7, wrap=in_context)
    leaked = sample(model, seeds=(1, 2), wrap=in_context)[1:]
    assert not torch.equal(leaked, alone)


@pytest.mark.slow  # over 10 s on 2 busy cores
def test_passes_one_at_a_time_keep_a_state_each(model) -> None:
    """The offload mode calls once per guidance pass with the same timestep and input; each pass is
    cached on its own history. TaylorSeer and MagCache decide by step, not by data, so one pass at a
    time must give what the batched passes give."""
    ratios = _calibrated_ratios(model)
    for kind, kwargs in (("taylorseer", {}), ("magcache", {"mag_ratios": ratios})):
        enable_step_cache(model, kind, WORKING[kind], STEPS, **kwargs)
        batched = sample(model)
        enable_step_cache(model, kind, WORKING[kind], STEPS, **kwargs)
        one_by_one = sample(model, batch_passes=False)
        stats = cache_stats(model)
        assert stats["calls"] == 2 * STEPS * 3 and stats["runs"] == 2 and stats["block_skips"] > 0
        assert torch.allclose(one_by_one, batched, atol=1e-4), kind


@torch.no_grad()
def test_run_boundaries(model) -> None:
    enable_step_cache(model, "first_block", 0.1, STEPS)
    c = _chunk_inputs(1)
    x = torch.cat([c["noise"], c["cond"]], dim=1)

    def call(t: float, inp: torch.Tensor) -> None:
        model(inp, torch.tensor([t]), c["text"], c["clip"], c["audio"][None])

    call(1000.0, x)
    call(1000.0, x)  # the same step's next pass
    call(900.0, x)  # next step
    assert cache_stats(model)["runs"] == 1
    call(1000.0, x)  # the timestep went up: a new run
    assert cache_stats(model)["runs"] == 2
    call(1000.0, x + 1)  # same timestep, other input: a new job right after one canceled at its first step
    assert cache_stats(model)["runs"] == 3 and cache_stats(model)["calls"] == 5


def test_disable_restores_the_plain_model(model) -> None:
    reference = sample(model, seeds=(1,))
    enable_step_cache(model, "first_block", 0.5, STEPS)
    enable_step_cache(model, "taylorseer", 4, STEPS)  # replaces the first cache
    assert cache_stats(model)["kind"] == "taylorseer"
    disable_step_cache(model)
    assert cache_stats(model) == {} and not model.is_cache_enabled
    assert all(not b._diffusers_hook.hooks for b in model.blocks)
    assert torch.equal(sample(model, seeds=(1,)), reference)


@pytest.mark.parametrize(
    ("kind", "threshold", "steps", "message"),
    [
        ("teacache", 0.1, 40, "unknown step cache"),
        ("first_block", -0.1, 40, "0 or more"),
        ("magcache", 0.1, 1, "2 or more"),
    ],
)
def test_bad_settings_say_what_to_change(model, kind, threshold, steps, message) -> None:
    with pytest.raises(ValueError, match=message):
        enable_step_cache(model, kind, threshold, steps)
