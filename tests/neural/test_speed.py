"""Speed options on the tiny transformer: int8 within tolerance, what stays precise, attention backends,
regional compile and its warm-up. FP8 needs FP8 tensor cores: here only its refusal is tested;
benchmarks/gpu_check.sh runs it on a GPU."""

from __future__ import annotations

import copy

import pytest
import torch
from pydantic import ValidationError

from infinitetalk.config import Settings
from infinitetalk.engines.neural.configs import TINY
from infinitetalk.engines.neural.speed import (
    SpeedOptions,
    apply_speed,
    check_attention,
    compile_blocks,
    quantize,
    warm_up,
)
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer
from infinitetalk.errors import InvalidRequest

#: int8 weight-only vs fp32 on the tiny model, relative L2 error of the output: measured 0.0022-0.0031
#: over 4 seeds; the bound leaves 3x margin. (Only the block linears are quantized; the embedders,
#: head and audio path are fp32, so a real model's error has the same make-up.)
INT8_TOLERANCE = 0.01

#: torch's inductor, imported on the first compile, uses a deprecated torch.jit API of its own (torch 2.13).
_INDUCTOR_IMPORT = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def model() -> InfiniteTalkTransformer:
    torch.manual_seed(0)
    return InfiniteTalkTransformer.from_model_config(TINY).eval().requires_grad_(False)


def _inputs(batch: int = 2, size: int = 4, image_tokens: int = 5):
    g = torch.Generator().manual_seed(1)
    return (
        torch.randn(batch, 36, 21, size, size, generator=g),
        torch.full((batch,), 500.0),
        torch.randn(batch, 512, TINY.text_dim, generator=g),
        torch.randn(batch, image_tokens, TINY.image_dim, generator=g),
        torch.randn(batch, 1, 81, 5, TINY.audio_layers, TINY.audio_dim, generator=g),
    )


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _is_quantized(linear: torch.nn.Linear) -> bool:
    return type(linear.weight) is not torch.nn.Parameter and type(linear.weight).__module__.startswith("torchao")


@torch.no_grad()
def test_int8_stays_within_tolerance_of_fp32(model) -> None:
    inputs = _inputs()
    reference = model(*inputs)
    q = copy.deepcopy(model)
    apply_speed(q, SpeedOptions(quantize="int8"), "cpu")
    error = _rel(q(*inputs), reference)
    assert 0 < error < INT8_TOLERANCE  # changed (really quantized), and close


@torch.no_grad()
def test_quantization_keeps_audio_path_and_embedders_precise(model) -> None:
    q = copy.deepcopy(model)
    apply_speed(q, SpeedOptions(quantize="int8"), "cpu")
    block = q.blocks[0]
    for linear in (block.attn1.to_q, block.attn1.to_out[0], block.attn2.to_k, block.ffn.net[2]):
        assert _is_quantized(linear)
    precise = [q.audio_proj.proj1, q.audio_proj.proj3, block.audio_cross_attn.q_linear, block.audio_cross_attn.proj]
    precise += [q.proj_out, q.condition_embedder.time_proj]
    assert not any(_is_quantized(m) for m in precise)


@torch.no_grad()
def test_audio_attention_kept_precise_because_it_carries_the_audio(model) -> None:
    """Why ``PRECISE_LAYERS`` holds the audio cross-attention: quantizing it too moves the audio's
    effect on the output (audio minus silent audio) about 3x further from fp32."""
    inputs = _inputs()
    silent = (*inputs[:4], torch.zeros_like(inputs[4]))
    effect = model(*inputs) - model(*silent)
    errors = {}
    for skip in ((), ("audio_cross_attn",)):
        q = copy.deepcopy(model)
        quantize(q, "int8", skip=skip)
        errors[skip] = _rel(q(*inputs) - q(*silent), effect)
    assert errors[("audio_cross_attn",)] < errors[()] / 2


def test_fp8_refused_without_fp8_tensor_cores(model) -> None:
    q = copy.deepcopy(model)
    with pytest.raises(InvalidRequest, match=r"FP8 tensor cores .*8\.9.*this one has a CPU.*int8") as info:
        apply_speed(q, SpeedOptions(quantize="fp8"), "cpu")
    assert info.value.field == "neural_quantize"
    assert not _is_quantized(q.blocks[0].attn1.to_q)  # refused before anything changed


@pytest.mark.parametrize(
    ("backend", "needs"),
    [("flash", "flash-attn>=2.6.3"), ("sage", "sageattention"), ("_flash_3", "FlashAttention 3")],
)
def test_missing_attention_backend_names_the_package(model, backend, needs) -> None:
    q = copy.deepcopy(model)
    with pytest.raises(InvalidRequest, match=f"'{backend}' needs {needs}.*not installed") as info:
        apply_speed(q, SpeedOptions(attention=backend), "cpu")
    assert info.value.field == "neural_attention"
    assert q.blocks[0].attn1.processor._attention_backend is None  # nothing was set


def test_gpu_only_attention_backend_refused_on_cpu() -> None:
    with pytest.raises(InvalidRequest, match="'_native_cudnn' runs on NVIDIA GPUs only.*native"):
        check_attention("_native_cudnn", torch.device("cpu"), torch.float32)


@torch.no_grad()
def test_native_backends_equal_the_default(model) -> None:
    inputs = _inputs()
    default = model(*inputs)
    native = copy.deepcopy(model)
    native.set_attention_backend("native")
    assert torch.equal(native(*inputs), default)
    math = copy.deepcopy(model)  # torch's reference kernel: a real change of path on the CPU
    apply_speed(math, SpeedOptions(attention="_native_math"), "cpu")
    assert math.blocks[0].attn1.processor._attention_backend == "_native_math"
    assert torch.allclose(math(*inputs), default, atol=1e-5)


@_INDUCTOR_IMPORT
def test_compile_option_compiles_the_repeated_blocks_only(model) -> None:
    q = copy.deepcopy(model)
    apply_speed(q, SpeedOptions(compile=True), "cpu")  # inductor compiles lazily: nothing runs here
    compiled = {name for name, m in q.named_modules() if getattr(m, "_compiled_call_impl", None) is not None}
    assert compiled == {f"blocks.{i}" for i in range(TINY.num_layers)}
    # room for a worker's shapes (buckets x passes x people): past the limit dynamo would silently run eagerly
    assert torch._dynamo.config.recompile_limit >= 64


@_INDUCTOR_IMPORT
@torch.no_grad()
@pytest.mark.slow  # over 10 s on 2 busy cores
def test_regional_compile_matches_eager_and_warm_up_covers_the_job_shape(model) -> None:
    """Traced as one graph per block (fullgraph: no graph breaks), run through AOT autograd. Inductor's
    C++ codegen takes ~13 s for the tiny model on this 2-core CPU, too slow for the suite; the GPU
    benchmark runs inductor."""
    from torch._dynamo.utils import counters

    inputs = _inputs(batch=1, size=8)
    eager = model(*inputs)
    q = copy.deepcopy(model)
    compile_blocks(q, backend="aot_eager", fullgraph=True)
    seconds = warm_up(q, height=64, width=64, passes=(1,), image_tokens=5)
    assert seconds > 0
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    out = q(*inputs)  # a job of the warmed-up shape compiles nothing more
    assert counters["stats"]["unique_graphs"] == graphs
    assert torch.allclose(out, eager, atol=1e-5)


def test_settings_are_validated_and_read() -> None:
    with pytest.raises(ValidationError, match="neural_quantize"):
        Settings(neural_quantize="int4")
    with pytest.raises(ValidationError, match="neural_attention"):
        Settings(neural_attention="flash_hub")
    with pytest.raises(ValidationError, match="neural_step_cache_threshold"):
        Settings(neural_step_cache_threshold=-1)
    s = Settings(neural_quantize="int8", neural_attention="sage", neural_compile=True)
    assert SpeedOptions.from_settings(s) == SpeedOptions("int8", "sage", True)
    assert SpeedOptions.from_settings(Settings()) == SpeedOptions("none", "native", False)
