"""Speed options for the InfiniteTalk transformer: FP8 / int8 linear layers, the attention backend, regional compile.

Applied once per worker, after the weights are loaded (LoRAs already merged into them) and before
the first job; every check that can fail runs here, so a job never meets a missing kernel halfway.

- ``quantize``: torchao on the linear layers of the transformer blocks only. ``fp8``: float8 weights
  and dynamically quantized float8 activations with per-row scales (needs FP8 tensor cores, CUDA
  compute capability 8.9+: Ada, Hopper, Blackwell); ``int8``: int8 weight-only, per output channel,
  on any device. The embedders, the output head and the adapter's ``audio_proj`` (a sliver of the
  FLOPs) and the blocks' audio cross-attention (it carries the lip sync: ``PRECISE_LAYERS``) stay
  as loaded.
- ``attention``: a diffusers backend for the self- and text/image cross-attention (the audio
  cross-attention is short, 32 keys per frame, and stays on torch's SDPA).
- ``compile``: ``torch.compile`` of each ``InfiniteTalkBlock`` (diffusers' regional compile): one
  compiled graph reused by all 40 blocks, so compiling costs about one block, not the model.
  ``warm_up`` pays that once per worker and input shape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import torch
from torch import nn

from infinitetalk.config import NeuralAttention, NeuralQuantize
from infinitetalk.errors import InvalidRequest

log = logging.getLogger(__name__)

QUANTIZE: tuple[str, ...] = get_args(NeuralQuantize)
ATTENTION: tuple[str, ...] = get_args(NeuralAttention)

#: Linear layers inside the blocks that stay unquantized. The audio cross-attention carries the lip sync:
#: int8 on it too triples the error of the audio's effect on the output (measured on tiny models, 4 seeds:
#: 0.61% vs 0.20% relative; the whole output 0.32% vs 0.28%) for ~15% of the block's linear FLOPs.
PRECISE_LAYERS: tuple[str, ...] = ("audio_cross_attn",)

#: Compiled versions of the block's forward kept before dynamo gives up on new shapes (see compile_blocks).
RECOMPILE_LIMIT = 64

#: FP8 matmuls with per-row scales (torch._scaled_mm) need compute capability 8.9 or newer.
FP8_CAPABILITY = (8, 9)


@dataclass(frozen=True)
class _Needs:
    package: str | None = None  # what to pip-install when diffusers cannot use the backend
    cuda: bool = True
    capability: tuple[int, int] | None = None


_FLASH = "flash-attn>=2.6.3"
_FLASH3 = "FlashAttention 3 (flash_attn_interface, built from the hopper/ folder of Dao-AILab/flash-attention)"
_SAGE = "sageattention>=2.1.1"
_BACKENDS: dict[str, _Needs] = {
    "native": _Needs(cuda=False),
    "_native_math": _Needs(cuda=False),
    "_native_cudnn": _Needs(),
    "_native_efficient": _Needs(),
    "_native_flash": _Needs(capability=(8, 0)),
    "flash": _Needs(_FLASH, capability=(8, 0)),
    "flash_varlen": _Needs(_FLASH, capability=(8, 0)),
    "_flash_3": _Needs(_FLASH3, capability=(9, 0)),
    "_flash_varlen_3": _Needs(_FLASH3, capability=(9, 0)),
    "sage": _Needs(_SAGE, capability=(8, 0)),
    "sage_varlen": _Needs(_SAGE, capability=(8, 0)),
    "_sage_qk_int8_pv_fp8_cuda": _Needs(_SAGE, capability=(8, 9)),
    "_sage_qk_int8_pv_fp8_cuda_sm90": _Needs(_SAGE, capability=(9, 0)),
    "_sage_qk_int8_pv_fp16_cuda": _Needs(_SAGE, capability=(8, 0)),
    "_sage_qk_int8_pv_fp16_triton": _Needs(_SAGE, capability=(8, 0)),
    "xformers": _Needs("xformers>=0.0.29"),
}
assert set(_BACKENDS) == set(ATTENTION), "config.NeuralAttention and speed._BACKENDS must list the same backends"


@dataclass(frozen=True)
class SpeedOptions:
    quantize: str = "none"  # one of QUANTIZE
    attention: str = "native"  # one of ATTENTION
    compile: bool = False

    def __post_init__(self) -> None:
        if self.quantize not in QUANTIZE:
            raise InvalidRequest(
                f"unknown quantization '{self.quantize}'; choose one of {', '.join(QUANTIZE)}", field="neural_quantize"
            )
        if self.attention not in ATTENTION:
            raise InvalidRequest(
                f"unknown attention backend '{self.attention}'; choose one of {', '.join(ATTENTION)}",
                field="neural_attention",
            )

    @classmethod
    def from_settings(cls, settings: Any) -> SpeedOptions:
        """The ``neural_quantize`` / ``neural_attention`` / ``neural_compile`` settings."""
        return cls(settings.neural_quantize, settings.neural_attention, bool(settings.neural_compile))


def apply_speed(transformer: nn.Module, options: SpeedOptions, device: torch.device | str) -> None:
    """Quantize, set the attention backend, compile, in that order (compile traces the other two).

    ``device`` is where the transformer computes. Raises ``InvalidRequest`` (naming the setting and
    what to install or change) before touching the model when an option cannot run here.
    """
    device = torch.device(device)
    dtype = _compute_dtype(transformer)
    check_quantize(options.quantize, device, transformer)
    check_attention(options.attention, device, dtype, transformer.config.attention_head_dim)
    if options.quantize != "none":
        n = quantize(transformer, options.quantize, compile_after=options.compile)
        log.info("neural speed: %s on %d block linear layers", options.quantize, n)
    if options.attention != "native":
        transformer.set_attention_backend(options.attention)
    if options.compile:
        compile_blocks(transformer)
    log.info("neural speed: quantize=%s attention=%s compile=%s", options.quantize, options.attention, options.compile)


# --- quantization ------------------------------------------------------------------------------------


def check_quantize(kind: str, device: torch.device, transformer: nn.Module | None = None) -> None:
    if kind == "none":
        return
    try:
        import torchao  # noqa: F401
    except ImportError:
        raise InvalidRequest(
            f"neural_quantize={kind} needs torchao: pip install 'infinitetalk[neural]' (torchao==0.18.0)",
            field="neural_quantize",
        ) from None
    if kind == "fp8":
        capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
        if capability is None or capability < FP8_CAPABILITY:
            found = "a CPU" if capability is None else f"compute capability {capability[0]}.{capability[1]}"
            raise InvalidRequest(
                f"neural_quantize=fp8 needs a GPU with FP8 tensor cores (CUDA compute capability 8.9+: L4, L40S, "
                f"RTX 4090, H100, H200, B200); this one has {found}. Use neural_quantize=int8 or none",
                field="neural_quantize",
            )
    if transformer is not None and _group_offloaded(transformer):
        raise InvalidRequest(
            f"neural_quantize={kind} cannot be combined with neural_offload yet; pick one of them",
            field="neural_quantize",
        )


def block_linear_filter(skip: Sequence[str] = PRECISE_LAYERS) -> Callable[[nn.Module, str], bool]:
    """torchao ``filter_fn``: linear layers under ``blocks.``, except names containing any of ``skip``."""

    def keep(module: nn.Module, fqn: str) -> bool:
        return isinstance(module, nn.Linear) and fqn.startswith("blocks.") and not any(s in fqn for s in skip)

    return keep


def quantize(
    transformer: nn.Module, kind: str, *, skip: Sequence[str] = PRECISE_LAYERS, compile_after: bool = False
) -> int:
    """Quantize the block linear layers in place (see ``block_linear_filter``); returns how many."""
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Int8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    # torchao's inductor tweaks are process-wide; only worth taking when the blocks will be compiled.
    if kind == "fp8":
        config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=compile_after)
    elif kind == "int8":
        config = Int8WeightOnlyConfig(set_inductor_config=compile_after)
    else:
        raise InvalidRequest(f"unknown quantization '{kind}'; choose one of {', '.join(QUANTIZE)}")
    keep = block_linear_filter(skip)
    count = sum(keep(m, name) for name, m in transformer.named_modules())
    quantize_(transformer, config, filter_fn=keep)
    return count


# --- attention ---------------------------------------------------------------------------------------


def check_attention(name: str, device: torch.device, dtype: torch.dtype = torch.bfloat16, head_dim: int = 128) -> None:
    """Raise a clear ``InvalidRequest`` unless backend ``name`` runs here: known, its package installed,
    the right device, and one small attention call through it that works."""
    needs = _BACKENDS.get(name)
    if needs is None:
        raise InvalidRequest(
            f"unknown attention backend '{name}'; choose one of {', '.join(ATTENTION)}", field="neural_attention"
        )
    if needs.package is not None:
        from diffusers.models.attention_dispatch import AttentionBackendName, _check_attention_backend_requirements

        try:
            _check_attention_backend_requirements(AttentionBackendName(name))
        except RuntimeError:
            raise InvalidRequest(
                f"attention backend '{name}' needs {needs.package}, which is not installed (or too old): install it, "
                "or set neural_attention=native",
                field="neural_attention",
            ) from None
    if needs.cuda and device.type != "cuda":
        raise InvalidRequest(
            f"attention backend '{name}' runs on NVIDIA GPUs only, and this engine runs on {device.type}: "
            "set neural_attention=native",
            field="neural_attention",
        )
    if needs.capability and torch.cuda.get_device_capability(device) < needs.capability:
        major, minor = needs.capability
        raise InvalidRequest(
            f"attention backend '{name}' needs CUDA compute capability {major}.{minor}+; this GPU has "
            f"{'.'.join(map(str, torch.cuda.get_device_capability(device)))}: choose another neural_attention",
            field="neural_attention",
        )
    if name != "native":
        _probe_attention(name, device, dtype, head_dim)


def _probe_attention(name: str, device: torch.device, dtype: torch.dtype, head_dim: int) -> None:
    # A real call with the model's dtype and head width catches what the checks above cannot: a kernel
    # built for another GPU or torch, a dtype the kernel refuses (flash and sage take bf16/fp16 only).
    from diffusers.models.attention_dispatch import AttentionBackendName, dispatch_attention_fn

    q, k, v = (torch.randn(1, 64, 2, head_dim, device=device, dtype=dtype) for _ in range(3))
    try:
        out = dispatch_attention_fn(q, k, v, backend=AttentionBackendName(name))
    except Exception as exc:  # any failure here is the backend's, reported before a job can meet it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidRequest(
            f"attention backend '{name}' does not run with this GPU and {str(dtype).removeprefix('torch.')} "
            f"({first}); choose another neural_attention",
            field="neural_attention",
        ) from None
    if not torch.isfinite(out).all():
        raise InvalidRequest(f"attention backend '{name}' gives non-finite output here; choose another")


# --- regional compile --------------------------------------------------------------------------------


def compile_blocks(
    transformer: nn.Module, *, backend: str = "inductor", fullgraph: bool = False, dynamic: bool = False
) -> None:
    """``torch.compile`` each repeated block (``InfiniteTalkBlock``) and nothing else.

    ``dynamic=False``: the shapes of a worker's jobs are few (a resolution bucket, 1-3 passes, one or
    two people), and static kernels are the fastest; each new shape compiles once (see ``warm_up``).
    ``fullgraph=False``: a graph break costs some speed, never a failed job.
    """
    # Every shape is one more compiled version of the block's forward (buckets x passes x people, and
    # each model built in the process); past torch's default of 8, dynamo silently runs the block eagerly.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
    transformer.compile_repeated_blocks(backend=backend, fullgraph=fullgraph, dynamic=dynamic)


def warm_up(
    target: Any,
    *,
    height: int = 640,
    width: int = 640,
    passes: Sequence[int] = (2,),
    people: Sequence[int] = (1,),
    image_tokens: int = 257,
    frames: int = 81,
) -> float:
    """One forward per (passes, people) shape with random inputs, so compilation (and autotuning,
    cuDNN plans, the allocator's pools) happens once per worker instead of in the first job.

    ``target``: a ``NeuralEngine``, an ``InfiniteTalkPipeline`` or the transformer. The shapes must be
    the jobs' own: ``height``/``width`` the output bucket, ``passes`` the guidance passes per forward
    (3 quality, 2 fast, 1 no guidance; 1 when passes run one at a time), ``image_tokens`` the CLIP
    tokens (257). Returns the seconds it took. On an H100 expect about one block's compile
    (tens of seconds) for the first shape, less for each further one.
    """
    pipeline = getattr(target, "pipeline", target)
    transformer = getattr(pipeline, "transformer", pipeline)
    device = getattr(pipeline, "device", None) or next(transformer.parameters()).device
    dtype = _compute_dtype(transformer)
    cfg = transformer.model_cfg
    latent_frames = (frames - 1) // cfg.vae_stride_t + 1
    lh, lw = height // 8, width // 8
    g = torch.Generator().manual_seed(0)

    def rand(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, dt)

    start = time.perf_counter()
    with torch.no_grad():
        for n in passes:
            for p in people:
                masks = None
                if p == 2:  # left and right halves of the first latent frame's tokens
                    th, tw = lh // 2, lw // 2
                    left = (torch.arange(tw) < tw // 2).float().repeat(th)
                    masks = torch.stack([left, 1 - left, torch.zeros_like(left)]).to(device)
                transformer(
                    rand(n, cfg.in_dim, latent_frames, lh, lw),
                    torch.full((n,), 500.0, device=device),
                    rand(n, 512, cfg.text_dim),
                    rand(n, image_tokens, cfg.image_dim),
                    rand(n, p, frames, cfg.audio_window, cfg.audio_layers, cfg.audio_dim, dt=torch.float32),
                    masks,
                )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    log.info("neural speed: warm-up of %d shape(s) took %.1f s", len(passes) * len(people), seconds)
    return seconds


def _compute_dtype(transformer: nn.Module) -> torch.dtype:
    # The patch embedding is never quantized and never kept in fp32: it carries the compute dtype.
    return transformer.patch_embedding.weight.dtype


def _group_offloaded(transformer: nn.Module) -> bool:
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    return _is_group_offload_enabled(transformer)
