"""The memory/FLOP planner: the engine's own code at full size on tensors with no data, and the checks built on it."""

from __future__ import annotations

import itertools
import os
from dataclasses import replace

import pytest
import torch

from infinitetalk.engines.neural import plan as planner
from infinitetalk.engines.neural.configs import FULL, TINY
from infinitetalk.engines.neural.plan import GIB, FitCheck, LiveBytes, Setting
from infinitetalk.errors import InvalidRequest, WontFit
from infinitetalk.schema.buckets import TABLES

MODES = ("i2v", "v2v")
SAMPLING = ("quality", "fast", "fast-1p")


def _every_setting(resolution: str) -> list[Setting]:
    """Every bucket of the table x i2v/v2v x 1/2 speakers x sampling mode x plain/offloaded x 2 and 8 ranks."""
    sizes = [(w, h) for h, w in TABLES[resolution].values()]
    return [Setting(w, h, sampling=sampling, speakers=speakers, mode=mode, offload=offload, gpus=gpus)
            for (w, h), mode, speakers, sampling, offload, gpus in itertools.product(
                sizes, MODES, (1, 2), SAMPLING, (False, True), (2, 8))]


@pytest.mark.slow  # 5-7 s of CPU per resolution, 18 s for the three (49 buckets: 588 step traces, 6 VAE traces)
@pytest.mark.parametrize("resolution", ["480p", "576p", "720p"])
def test_full_size_every_bucket_plans_without_a_shape_error(resolution, record_property) -> None:
    settings = _every_setting(resolution)
    for setting in settings:
        p = planner.plan(setting, resolution=resolution)
        record_property(f"{resolution} {setting.describe()}", round(p.peak_gib, 2))
        assert p.weights < p.peak < 200 * GIB
        assert p.denoise > 0 and p.vae > 0
        if setting.gpus == 8:  # a rank's share of the sequence can only shrink with more ranks
            assert p.denoise <= planner.plan(replace(setting, gpus=2), resolution=resolution).denoise
        if setting.offload:
            assert p.peak < planner.plan(replace(setting, offload=False), resolution=resolution).peak
    # settings share a trace only where they run the same shapes; every bucket's every distinct step
    # (speakers x guidance passes per forward x ranks: 12 of the 48 settings) ran through the model
    shapes = {(s.width, s.height, s.speakers, s.passes_per_forward, s.gpus) for s in settings}
    assert len(shapes) == 12 * len(TABLES[resolution])
    traced = {key[1:6] for key in planner.step_traces if key[0] == FULL and key[6:] == (1, False)}
    assert shapes <= traced


@pytest.mark.slow  # ~7 s on 2 busy cores: FakeTensorMode's trace is the slow one
def test_no_data_trace_equals_a_fake_tensor_trace() -> None:
    """The planner's meta-device trace against torch's FakeTensorMode (fake CPU tensors) on the same step and
    VAE: the same bytes and FLOPs, traced afresh and again from the remembered shapes. Without attention
    sent to the fused kernel, the meta trace would hold the scores of every query against every key: a
    129 GiB peak here instead of 2.9."""
    from diffusers import AutoencoderKLWan
    from torch._subclasses.fake_tensor import FakeTensorMode

    from infinitetalk.engines.neural.vae import VideoVAE

    cfg = replace(FULL, num_layers=1)
    args = (FULL, 1280, 320, 2, 3, 8, torch.bfloat16)  # two speakers (routing), three passes over 8 ranks
    with FakeTensorMode(), torch.no_grad():
        fake_step = planner.trace_step(planner._transformer(cfg, torch.bfloat16), *args)
        fake_vae = planner.trace_vae(VideoVAE(AutoencoderKLWan(base_dim=8).eval()), 64, 48, frames=5)
    for _ in range(2):  # the second time, every op's result comes from _RepeatedShapes
        with planner._no_data():
            step = planner.trace_step(planner._transformer(cfg, torch.bfloat16), *args)
            vae = planner.trace_vae(VideoVAE(AutoencoderKLWan(base_dim=8).eval()), 64, 48, frames=5)
        assert step == fake_step
        assert vae == fake_vae


def test_remembered_shapes_remake_the_same_tensors() -> None:
    """An op seen again with the same inputs' shapes gets a tensor like the kernel's: shape, strides, dtype,
    device and storage size; a tensor made on the CPU stays there."""

    def ops() -> list[torch.Tensor]:
        x = torch.empty(6, 4, dtype=torch.bfloat16).t()  # strides (1, 4): not contiguous
        return [torch.nn.functional.layer_norm(x.float(), (6,)), x * 2, x.sum(0, keepdim=True),
                torch.empty_strided((2, 3), (1, 2)) + 1, torch.zeros(3, device="cpu")]

    def described(tensors: list[torch.Tensor]) -> list[tuple]:
        return [(t.shape, t.stride(), t.dtype, t.device.type, t.untyped_storage().nbytes()) for t in tensors]

    with planner._no_data():
        first = described(ops())
        remembered = len(planner._REMEMBERED)
        again = described(ops())
    assert len(planner._REMEMBERED) == remembered  # all from memory the second time
    assert again == first
    assert first[-1][3] == "cpu" and first[0][3] == "meta"


@pytest.mark.slow  # ~3 s on 2 busy cores: the 14B weights and FLOP traces
def test_full_size_figures() -> None:
    """The numbers the docs quote, and the meta-device counter's ~1.9 PFLOP per 14B pass at 640x640."""
    p = planner.plan(Setting(640, 640, sampling="fast-1p"), resolution="480p")
    assert p.flops_per_step / 1e15 == pytest.approx(1.89, rel=0.02)
    p720 = planner.plan(Setting(960, 960, sampling="fast-1p"), resolution="720p")
    assert p720.flops_per_step / 1e15 == pytest.approx(6.9, rel=0.02)
    quality = planner.plan(Setting(640, 640), resolution="480p")
    assert quality.flops_per_step == 3 * p.flops_per_step  # three guidance passes, batched
    # bf16 transformer (18.9B parameters with the adapter) + umt5-xxl encoder + CLIP ViT-H + wav2vec2 + VAE
    assert 46 < p.weights / GIB < 50
    assert quality.peak > p.peak  # a 3-pass batch holds three passes' activations


@pytest.mark.slow  # ~2 s on 2 busy cores: a 40-block trace
def test_one_block_trace_stands_for_forty() -> None:
    """The planner traces one block: a 40-block forward has the same activation peak, and the FLOPs it
    extrapolates from one and two blocks are the 40-block count."""
    with planner._no_data():
        model = planner._transformer(FULL, torch.bfloat16)
        peak40, flops40 = planner.trace_step(model, FULL, 640, 640, 1, 1, 1, torch.bfloat16)
    assert peak40 == planner._step_trace(FULL, 640, 640, 1, 1, 1)[0]
    assert flops40 == planner.step_flops(FULL, 640, 640, 1, 1)


@pytest.mark.slow  # ~6 s on 2 busy cores: an 81-frame VAE trace
def test_vae_scales_with_pixels_within_the_resolution() -> None:
    """The VAE's peak, from 13- and 17-frame traces of the square bucket scaled by pixels, against a direct
    81-frame trace of a wide bucket."""
    scaled = planner.vae_peak("480p", 896, 448)
    from diffusers import AutoencoderKLWan

    from infinitetalk.engines.neural.vae import VideoVAE

    with planner._no_data():
        vae = VideoVAE(AutoencoderKLWan(base_dim=96).eval().requires_grad_(False))
        direct = planner.trace_vae(vae, 896, 448)
    assert scaled == pytest.approx(direct, rel=0.05)
    assert planner._vae_trace(896, 448) == direct  # the two short traces extrapolate to 81 frames exactly


def test_live_bytes_counts_storages_once_and_frees_them() -> None:
    with LiveBytes() as live:
        a = torch.empty(1000)  # 4000 bytes
        view = a[10:]  # same storage: not counted again
        b = a * 2  # 4000 more: peak 8000
        del a, view, b
        c = torch.empty(500, dtype=torch.float64)  # 4000, after the others are gone
    assert live.peak == 8000
    assert live.live == 4000
    del c


def test_offload_and_quantize_do_not_combine() -> None:
    with pytest.raises(InvalidRequest, match="offload and quantization"):
        Setting(offload=True, quantize="int8")


@pytest.mark.slow  # ~3 s on 2 busy cores: plans of several settings
def test_fit_check_names_what_fits_on_a_24_gb_card() -> None:
    check = FitCheck(FULL, 24.0, Setting())
    with pytest.raises(WontFit) as err:
        check.start()
    assert "INFINITETALK_NEURAL_OFFLOAD=true" in err.value.message
    assert "24.0 GB" in err.value.message
    FitCheck(FULL, 64.0, Setting()).start()  # a 64 GB card takes the 480p job as it is (~59 GB)...
    with pytest.raises(WontFit, match="this job") as err:
        FitCheck(FULL, 64.0, Setting()).job(960, 960, 1)  # ... but not a 720p one (~72 GB)
    assert err.value.field == "resolution"
    assert "INFINITETALK_NEURAL_QUANTIZE=int8" in err.value.message  # the cheapest change that fits


@pytest.mark.slow  # ~2 s on 2 busy cores: a tiny-model plan with its VAE trace
def test_engine_refuses_before_reading_weights(tiny_weights, monkeypatch) -> None:
    from infinitetalk.engines.neural import engine as engine_module

    def read(*args, **kwargs):
        raise AssertionError("the weights were read before the memory check")

    monkeypatch.setattr(engine_module, "load_transformer", read)
    with pytest.raises(WontFit, match="needs about"):
        engine_module.NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", gpu_memory_gb=0.5)


@pytest.mark.slow  # ~5 s on 2 busy cores: plans of two job sizes
def test_engine_checks_each_job(tiny_weights) -> None:
    from infinitetalk.engines.neural.engine import NeuralEngine
    from infinitetalk.engines.neural.pipeline import SamplingOptions

    engine = NeuralEngine.from_pretrained(tiny_weights.root, device="cpu", options=SamplingOptions(steps=1),
                                          gpu_memory_gb=planner.plan(Setting(), TINY, "480p", 8).peak_gib + 2.5)
    assert engine.fit_check is not None and engine.fit_check.cfg == TINY
    with pytest.raises(WontFit, match="this job"):
        engine.fit_check.job(1920, 512, 1)
    engine.fit_check.job(640, 640, 1)


def test_no_card_nothing_to_check(tiny_weights) -> None:
    from infinitetalk.engines.neural.engine import NeuralEngine

    assert NeuralEngine.from_pretrained(tiny_weights.root, device="cpu").fit_check is None


#: A real CPU run the planner must predict: the full model's structure at a quarter of its width (dim 1280,
#: 10 heads of 128), one block, one 640x640 pass (the 480p square bucket) of 3 latent frames, float32.
MID = replace(FULL, dim=1280, ffn_dim=3456, num_heads=10, num_layers=1)
MID_FRAMES = 9

_MEASURE = """
import json, resource, sys
import torch
from infinitetalk.engines.neural.configs import ModelConfig
from infinitetalk.engines.neural.plan import step_inputs
from infinitetalk.engines.neural.pipeline import InfiniteTalkPipeline, SamplingOptions
from infinitetalk.engines.neural.sampler import Guidance, euler_step
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

torch.set_num_threads(2)
cfg = ModelConfig(**json.loads(sys.argv[1]))

def rss() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

with torch.device("meta"):
    model = InfiniteTalkTransformer.from_model_config(cfg)
base = rss()
model = model.to_empty(device="cpu").eval().requires_grad_(False)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.02)  # touch every page: an untouched weight is not resident
    weights = rss() - base
    pipe = InfiniteTalkPipeline(model, None, None, None, None, "cpu")
    s = step_inputs(cfg, 640, 640, 1, 1, torch.float32, frames=int(sys.argv[2]))
    options = SamplingOptions(guidance=Guidance(1.0, 1.0), batch_passes=False)
    v = pipe.predict(s["x"], s["cond"], 500.0, s["texts"], s["audios"], s["clip"], options, s["ref_masks"])
    euler_step(s["x"], v, 0.5, 0.4)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"weights": weights, "peak": peak - base}))
"""


@pytest.mark.slow  # ~15 s of CPU: a real forward of a quarter-width model at 640x640 on two CPU cores
def test_prediction_matches_a_real_cpu_run(tmp_path) -> None:
    """The planner's weights + step peak against a subprocess's peak resident memory over its baseline."""
    import json
    import subprocess
    import sys

    # glibc returns freed blocks of 64 KiB and more to the system at once, so the resident set follows
    # the live tensors the way CUDA's max_memory_allocated does (its default keeps a heap that only grows)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(MID.to_dict()), str(MID_FRAMES)],
                         capture_output=True, text=True, env=env, timeout=300, check=True)
    measured = json.loads(out.stdout.strip().splitlines()[-1])

    with planner._no_data():
        model = planner._transformer(MID, torch.float32)
        weights = sum(p.nbytes for p in model.parameters())
        step, _ = planner.trace_step(model, MID, 640, 640, 1, 1, 1, torch.float32, MID_FRAMES, count_flops=False)
    predicted = weights + step
    assert measured["peak"] > 400 * 2**20  # weights and activations dominate the process's own noise
    assert step > 200 * 2**20  # ... and the activations are a good part of it
    assert weights == pytest.approx(measured["weights"], rel=0.05)
    assert predicted == pytest.approx(measured["peak"], rel=0.15), (predicted, measured)
