"""Memory and FLOP plan of a neural job, from the engine's own code run on tensors with no data (on the CPU).

``plan(setting)`` predicts one GPU's peak memory for one chunk of a job (weights + the denoising step's
activations, or the VAE's decode and encode, whichever is higher) and the FLOPs per video second, by
running the pipeline's ``predict`` (the transformer, guidance batching, sequence-parallel shards) and its
VAE steps on tensors with shapes and no data (torch's meta device): every op runs its shape logic, no
memory is allocated, so the 14B model at 720p plans on a laptop in seconds. A dispatch mode adds up the
bytes of every storage the ops create and frees them when Python drops the tensor (what the CUDA caching
allocator's ``max_memory_allocated`` counts, less its 512-byte rounding).

Meta tensors rather than ``FakeTensorMode``: the same kernels' shape functions (a fake tensor is a meta
tensor plus a device), without fake mode's per-op Python bookkeeping, which made a step trace 4-8 times
slower (0.3-0.9 s against 0.05-0.12 s; with ``_RepeatedShapes``, 0.03 s in a sweep over every bucket and
setting, 588 traces). One difference would matter: on the meta device torch's attention
picks its math fallback, which materialises the [tokens, tokens] score matrix (168 GiB at 640x640), where
the engine on a GPU and a fake CPU tensor both run a fused kernel that keeps only the output and its
log-sum-exp. ``_FusedAttention`` sends attention to that fused kernel (its CPU variant, as a fake CPU
tensor does); every byte and FLOP then equals the fake-tensor trace's.

Why the numbers hold at full size from short traces:

- a forward under ``no_grad`` keeps one block's activations at a time, so its activation peak is the same
  with one block as with forty; FLOPs are counted with one and two blocks and extrapolated linearly
  (``tests/neural/test_plan.py`` checks both against a 40-block trace);
- the weights are counted from the full model's parameters (built with no data: no memory);
- the VAE's decode and encode are traced at the resolution's square bucket and scaled by pixel count to
  the other buckets of that resolution (its convolutions' activations are proportional to pixels), on
  13- and 17-frame chunks extrapolated to 81 frames (its peak grows by the same bytes every 4 frames);
  both checked against a direct 81-frame trace of a non-square bucket in the tests.

What is not traced: the CUDA context and allocator fragmentation (``RESERVE_GIB`` is left free for them
when deciding whether a setting fits), kernels' internal workspaces (flash attention's is small), and
the text and image encoders' activations (they run once per job on 512 tokens and 257 tokens: small next
to one 14B step). Their weights are counted: the engine keeps them on the GPU. The audio encoder runs on the
CPU, as the official code runs it, and the job's audio features stay in host memory (only each chunk's
windows go to the GPU), so nothing on the card grows with the video's length.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import cache, cached_property

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from infinitetalk.engines.neural.configs import FULL, ModelConfig
from infinitetalk.engines.neural.loop import CHUNK_FRAMES, MOTION_FRAMES, color_correct
from infinitetalk.engines.neural.pipeline import SAMPLING_MODES, SamplingOptions
from infinitetalk.errors import InvalidRequest
from infinitetalk.schema.buckets import TABLES

GIB = 2**30
#: Left free on every card for the CUDA context (~0.5 GiB), cuBLAS/cuDNN workspaces and allocator fragmentation.
RESERVE_GIB = 2.0
#: A steady-state chunk adds 72 new frames at 25 fps.
VIDEO_S_PER_CHUNK = (CHUNK_FRAMES - MOTION_FRAMES) / 25
#: Dense tensor-core rates of an H100 SXM (TFLOP/s, no sparsity): the FLOP floor in the docs uses them.
H100_BF16_TFLOPS = 989.0
H100_FP8_TFLOPS = 1979.0
#: The utilisation the plan's "at ... %" time assumes: what a well-tuned 14B DiT reaches in bf16 on Hopper.
STATED_UTILISATION = 0.4

QUANTIZE = ("none", "int8", "fp8")
MODES = ("i2v", "v2v")


@dataclass(frozen=True)
class Setting:
    """One job's shape and the engine's settings that change its memory."""

    width: int = 640
    height: int = 640
    sampling: str = "quality"  # a key of SAMPLING_MODES
    speakers: int = 1
    mode: str = "i2v"  # "i2v" | "v2v": the same work on the GPU (v2v's source frames stream on the host)
    offload: bool = False
    quantize: str = "none"  # one of QUANTIZE
    gpus: int = 1  # ranks sharing one job (sequence parallel)

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_MODES:
            raise InvalidRequest(f"unknown sampling mode '{self.sampling}'; choose one of {', '.join(SAMPLING_MODES)}")
        if self.quantize not in QUANTIZE:
            raise InvalidRequest(f"unknown quantization '{self.quantize}'; choose one of {', '.join(QUANTIZE)}")
        if self.mode not in MODES:
            raise InvalidRequest(f"unknown mode '{self.mode}'; choose i2v or v2v")
        if self.speakers not in (1, 2):
            raise InvalidRequest(f"InfiniteTalk animates one or two speakers, not {self.speakers}")
        if self.gpus < 1:
            raise InvalidRequest(f"--gpus must be 1 or more, got {self.gpus}")
        if self.offload and self.quantize != "none":
            raise InvalidRequest("offload and quantization do not combine in the engine; choose one")

    @property
    def options(self) -> SamplingOptions:
        return SAMPLING_MODES[self.sampling]

    @property
    def passes_per_forward(self) -> int:
        """Guidance passes batched into one forward; offloading runs them one at a time (as the engine does)."""
        return 1 if self.offload else self.options.guidance.passes

    def describe(self) -> str:
        parts = [f"{self.width}x{self.height}", self.mode, f"{self.speakers} speaker{'s' * (self.speakers > 1)}",
                 self.sampling, "offload" if self.offload else "", self.quantize if self.quantize != "none" else "",
                 f"{self.gpus} GPUs" if self.gpus > 1 else ""]
        return ", ".join(p for p in parts if p)


@dataclass(frozen=True)
class Plan:
    setting: Setting
    cfg: ModelConfig
    weights: int  # bytes resident on each GPU: transformer (or its offload share) + VAE + encoders
    denoise: int  # peak bytes over the weights during one denoising step (the batched forward, guidance)
    vae: int  # peak bytes over the weights while encoding, decoding and re-encoding a chunk

    @property
    def peak(self) -> int:
        return self.weights + max(self.denoise, self.vae)

    @property
    def peak_gib(self) -> float:
        return self.peak / GIB

    def fits(self, gpu_gib: float) -> bool:
        return self.peak_gib + RESERVE_GIB <= gpu_gib

    @cached_property
    def flops_per_step(self) -> int:
        """Every guidance pass of one step, all ranks together (counted lazily: two more traces)."""
        s = self.setting
        passes = s.passes_per_forward
        return step_flops(self.cfg, s.width, s.height, s.speakers, passes) * (s.options.guidance.passes // passes)

    @property
    def flops_per_chunk(self) -> int:
        return self.flops_per_step * self.setting.options.steps

    @property
    def flops_per_video_s(self) -> float:
        return self.flops_per_chunk / VIDEO_S_PER_CHUNK

    def seconds_per_video_s(self, tflops: float, utilisation: float = 1.0) -> float:
        """Wall seconds per video second on ``setting.gpus`` cards of ``tflops`` dense rate at ``utilisation``
        (the denoising steps only: the VAE and encoders add a few percent)."""
        return self.flops_per_video_s / (tflops * 1e12 * utilisation * self.setting.gpus)


# --- counting --------------------------------------------------------------------------------------


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages created by the ops it sees, live now and at their peak.

    Each new storage is counted once (views share their base's storage) and released by a weakref
    callback when Python drops it, as the caching allocator gets a block back when its tensor dies.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        # id(storage) -> a weak reference whose callback releases it: an id stays here only while its
        # storage lives, so a later storage at the same address is a new one
        self._known: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        out = func(*args, **(kwargs or {}))
        inputs = None
        for t in _tensors(out):
            storage = t.untyped_storage()
            if id(storage) in self._known:
                continue
            if inputs is None:
                inputs = {id(i.untyped_storage()) for i in _tensors((args, kwargs))}
            # an output on an input's storage is a view or an in-place result: no new memory (and a view of
            # a weight made before counting began must not be counted as an activation)
            if id(storage) not in inputs:
                self._track(storage)
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        nbytes = storage.nbytes()
        key = id(storage)
        self._known[key] = weakref.ref(storage, lambda _, key=key, nbytes=nbytes: self._release(key, nbytes))
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def _release(self, key: int, nbytes: int) -> None:
        del self._known[key]
        self.live -= nbytes


def _tensors(tree) -> list[torch.Tensor]:
    """The tensors in an op's arguments or results (nested in lists, tuples and dicts); faster than pytree
    for what aten ops take and return."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        tree = tree.values()
    elif not isinstance(tree, (list, tuple)):
        return []
    return [t for item in tree for t in _tensors(item)]


def _cpu_flash_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    """torch's counter knows the CUDA attention kernels; the CPU one (what ``_FusedAttention`` calls)
    does the same 4*b*h*s*s'*d work."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_FLOP_MAPPING = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_flops}


#: ``F.scaled_dot_product_attention``'s parameters in order, to read a call made with positions or names.
_SDPA_PARAMETERS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


class _FusedAttention(TorchFunctionMode):
    """Attention on meta tensors through the fused kernel the engine gets on a GPU (see the module docstring).

    A call the fused kernel cannot take (dropout, grouped-query heads) goes on to torch's own choice: its
    score matrix then shows in the plan as hundreds of GB, which the tests would catch."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        call = dict(zip(_SDPA_PARAMETERS, args, strict=False)) | kwargs
        if call["query"].device.type != "meta" or call.get("dropout_p") or call.get("enable_gqa"):
            return func(*args, **kwargs)
        out, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            call["query"], call["key"], call["value"], 0.0, call.get("is_causal", False),
            attn_mask=call.get("attn_mask"), scale=call.get("scale"))
        return out


class _RepeatedShapes(TorchDispatchMode):
    """Meta kernels' results remembered by their inputs' shapes: an op seen before with the same shapes,
    strides, dtypes and other arguments gets a new tensor of the shape, strides and dtype it gave then.

    Most of a trace's time is aten's meta kernels written in Python (a layer norm's takes ~1 ms), and the
    sweep over buckets and settings repeats most ops with the same shapes: the blocks' norms within a
    trace, the text and image projections across all traces of a batch size. Only ops that return new
    tensors are remembered (no views, no in-place or collective ops), and only when each result owns its
    whole storage, so the new tensor's storage is exactly the kernel's (what ``LiveBytes`` counts).
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not _functional(func):
            return func(*args, **kwargs)
        try:
            key = (func, _describe(args), _describe(kwargs), torch.get_default_dtype())
            known = _REMEMBERED.get(key, False)
        except (_NotMeta, TypeError):  # a real tensor, or an argument with no hash
            return func(*args, **kwargs)
        if known:
            made = [torch.empty_strided(size, stride, dtype=dtype, device="meta") for size, stride, dtype in known[1]]
            return made[0] if known[0] else tuple(made)
        out = func(*args, **kwargs)
        if known is False:
            _REMEMBERED[key] = _result_of(out)
        return out


#: ``_RepeatedShapes``' results, shared by every trace of the process: (op, its arguments described) ->
#: (one tensor or a tuple, [(size, stride, dtype)]), or None for an op whose results it cannot remake.
_REMEMBERED: dict[tuple, tuple | None] = {}


@cache
def _functional(func) -> bool:
    """Whether an aten op returns new tensors only: no view, no in-place or out= result, no collective."""
    schema = func._schema
    return not schema.is_mutable and all(r.alias_info is None for r in schema.returns) and all(
        a.alias_info is None for a in schema.arguments)


class _NotMeta(Exception):
    pass


def _describe(value) -> object:
    """A hashable key of an op's argument: a tensor by its metadata, a number with its type."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta":
            raise _NotMeta
        return (value.shape, value.stride(), value.dtype, value.storage_offset())
    if isinstance(value, (list, tuple)):
        return tuple(_describe(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _describe(v)) for k, v in value.items())
    return (type(value), value)


def _result_of(out) -> tuple | None:
    """(single, [(size, stride, dtype)]) of an op's new tensors; None when they cannot be remade exactly."""
    single = isinstance(out, torch.Tensor)
    tensors = [out] if single else out
    if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, torch.Tensor) for t in tensors):
        return None
    if len({id(t.untyped_storage()) for t in tensors}) < len(tensors):
        return None
    specs = []
    for t in tensors:
        if t.device.type != "meta" or t.storage_offset() or t.requires_grad:
            return None
        remade = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
        if remade.untyped_storage().nbytes() != t.untyped_storage().nbytes():
            return None
        specs.append((t.shape, t.stride(), t.dtype))
    return single, specs


@contextmanager
def _no_data() -> Iterator[None]:
    """New tensors and models get shapes and no data (the meta device); attention as on a GPU."""
    with torch.device("meta"), _FusedAttention(), _RepeatedShapes(), torch.no_grad():
        yield


@contextmanager
def _ranks(world: int) -> Iterator[torch.distributed.ProcessGroup | None]:
    """A fake process group of ``world`` ranks with this process as rank 0 (the rank with the most frames):
    the engine's collectives run their shape logic and move nothing."""
    if world == 1:
        yield None
        return
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise InvalidRequest("planning a multi-GPU job needs a process without torch.distributed; "
                             "run `infinitetalk models plan` on its own")
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        yield dist.group.WORLD
    finally:
        dist.destroy_process_group()


def _transformer(cfg: ModelConfig, dtype: torch.dtype):  # noqa: ANN202
    """The engine's transformer in the loader's dtypes (norms fp32, the rest ``dtype``); build it inside
    ``_no_data()`` for one with no data."""
    from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

    model = InfiniteTalkTransformer.from_model_config(cfg)
    for name, p in model.named_parameters():
        keep = any(k in name for k in model._keep_in_fp32_modules)
        p.data = p.data.to(torch.float32 if keep else dtype)
    return model.eval().requires_grad_(False)


def step_inputs(cfg: ModelConfig, width: int, height: int, speakers: int, passes: int, dtype: torch.dtype,
                frames: int = CHUNK_FRAMES) -> dict:
    """One denoising step's tensors as ``generate_chunks`` makes them (shapes and dtypes; values random)."""
    latent_t = (frames - 1) // cfg.vae_stride_t + 1
    lat = (latent_t, height // 8, width // 8)
    text = torch.randn(1, 512, cfg.text_dim).to(dtype)
    negative = torch.randn(1, 512, cfg.text_dim).to(dtype)
    windows = torch.randn(speakers, frames, cfg.audio_window, cfg.audio_layers, cfg.audio_dim)
    null = torch.zeros_like(windows[-1:])
    texts, audios = {3: ([text, negative, negative], [windows, windows, null]), 2: ([text, text], [windows, null]),
                     1: ([text], [windows])}[passes]
    tokens = (height // 16) * (width // 16)
    masks = (torch.rand(3, tokens) > 0.5).float() if speakers == 2 else None
    return {"x": torch.randn(1, cfg.out_dim, *lat), "cond": torch.randn(1, 4 + cfg.out_dim, *lat),
            "texts": texts, "audios": audios, "clip": torch.randn(1, 257, cfg.image_dim).to(dtype),
            "ref_masks": masks}


def trace_step(model, cfg: ModelConfig, width: int, height: int, speakers: int, passes: int, gpus: int,
               dtype: torch.dtype, frames: int = CHUNK_FRAMES, count_flops: bool = True) -> tuple[int, int]:
    """(peak live bytes, FLOPs on this rank) of one denoising step through the pipeline's own ``predict``.

    Call inside ``_no_data()`` (or on real tensors, to measure the same thing). ``model``'s weights are not
    counted: only what the step creates (its inputs included).
    """
    from infinitetalk.engines.neural.parallel import disable_parallel, enable_parallel
    from infinitetalk.engines.neural.pipeline import InfiniteTalkPipeline
    from infinitetalk.engines.neural.sampler import Guidance, euler_step

    guidance = {3: Guidance(), 2: Guidance(1.0, 4.0), 1: Guidance(1.0, 1.0)}[passes]
    options = SamplingOptions(guidance=guidance, batch_passes=passes > 1)
    device = model.patch_embedding.weight.device
    pipe = InfiniteTalkPipeline(model, None, None, None, None, device)  # type: ignore[arg-type]  # predict only
    with _ranks(gpus) as group:
        if group is not None:
            enable_parallel(model, group)
        try:
            counter = FlopCounterMode(display=False, custom_mapping=_FLOP_MAPPING) if count_flops else nullcontext()
            with counter, LiveBytes() as live:
                s = step_inputs(cfg, width, height, speakers, passes, dtype, frames)
                v = pipe.predict(s["x"], s["cond"], 500.0, s["texts"], s["audios"], s["clip"], options,
                                 s["ref_masks"])
                s["x"] = euler_step(s["x"], v, 0.5, 0.4)
                del v, s
        finally:
            disable_parallel(model)
    return live.peak, counter.get_total_flops() if count_flops else 0


@cache
def _block_model(cfg: ModelConfig, layers: int):
    """A ``layers``-block copy of ``cfg`` with no data, in bf16: built once, then every trace runs it (a
    trace leaves it as it found it: ``trace_step`` switches the parallel forward off again)."""
    with _no_data():
        return _transformer(replace(cfg, num_layers=layers), torch.bfloat16)


#: Every step traced so far: (cfg, width, height, speakers, passes, gpus, layers, count_flops) ->
#: (peak bytes, FLOPs). Settings with the same shapes share one (sampling modes with the same guidance
#: passes, offloaded and not at one pass, i2v and v2v); the tests read the keys to see every shape ran.
step_traces: dict[tuple, tuple[int, int]] = {}


def _step_trace(cfg: ModelConfig, width: int, height: int, speakers: int, passes: int, gpus: int,
                layers: int = 1, count_flops: bool = False) -> tuple[int, int]:
    """``trace_step`` on a ``layers``-block copy of ``cfg`` in bf16 (the activation peak does not depend on
    the depth: one block's activations are live at a time)."""
    key = (cfg, width, height, speakers, passes, gpus, layers, count_flops)
    if key not in step_traces:
        model = _block_model(cfg, layers)
        with _no_data():
            step_traces[key] = trace_step(model, cfg, width, height, speakers, passes, gpus, torch.bfloat16,
                                          count_flops=count_flops)
    return step_traces[key]


def step_flops(cfg: ModelConfig, width: int, height: int, speakers: int, passes: int) -> int:
    """FLOPs of one step at ``cfg``'s full depth on one GPU, from one- and two-block traces."""
    one = _step_trace(cfg, width, height, speakers, passes, 1, 1, True)[1]
    two = _step_trace(cfg, width, height, speakers, passes, 1, 2, True)[1]
    return one + (cfg.num_layers - 1) * (two - one)


def trace_vae(vae, width: int, height: int, frames: int = CHUNK_FRAMES) -> int:
    """Peak live bytes of a chunk's VAE work as ``generate_chunks`` does it: encode the condition (reference
    + zeros), then decode the denoised latents, colour-correct, re-encode the motion frames, and turn the
    frames to uint8 (``to_frames`` before its copy to the host). ``vae`` is a ``VideoVAE``."""
    with LiveBytes() as live:
        ref = torch.rand(1, 3, height, width) * 2 - 1
        video = torch.cat([ref[:, :, None], ref.new_zeros(1, 3, frames - 1, height, width)], dim=2)
        cond = vae.encode(video)
        del video
        x = torch.randn_like(cond)
        video = vae.decode(x)
        video = color_correct(video, ref, 1.0)
        motion = vae.encode(video[:, :, -MOTION_FRAMES:])
        as_uint8 = ((video[0].permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        del video, as_uint8, motion, cond, x
    return live.peak


@cache
def _vae_trace(width: int, height: int, base_dim: int = 96, frames: int = CHUNK_FRAMES) -> int:
    """The VAE's chunk peak, from two short traces: it grows by the same bytes per 4 frames (the output
    video and its copies; the causal caches and one step's activations are fixed), so 13 and 17 frames
    give 81 exactly (``test_vae_scales_with_pixels_within_the_resolution`` checks it) at a third of the ops."""
    from diffusers import AutoencoderKLWan

    from infinitetalk.engines.neural.vae import VideoVAE

    short = MOTION_FRAMES + 4  # the shortest chunk that still re-encodes 9 motion frames
    with _no_data():
        vae = VideoVAE(AutoencoderKLWan(base_dim=base_dim).eval().requires_grad_(False))
        if frames <= short + 4:
            return trace_vae(vae, width, height, frames)
        first, second = trace_vae(vae, width, height, short), trace_vae(vae, width, height, short + 4)
    return first + (second - first) * (frames - short) // 4


def vae_peak(resolution: str | None, width: int, height: int, base_dim: int = 96) -> int:
    """The VAE's peak at ``width`` x ``height``: traced at the resolution's square bucket, scaled by pixels."""
    square = _square_of(resolution, width, height)
    if square is None:
        return _vae_trace(width, height, base_dim)
    return round(_vae_trace(square, square, base_dim) * (width * height) / (square * square))


def _square_of(resolution: str | None, width: int, height: int) -> int | None:
    for name, table in TABLES.items():
        if (resolution is None or name == resolution) and (height, width) in table.values():
            return table["1.00"][0]
    return None


# --- weights ---------------------------------------------------------------------------------------


@cache
def weight_bytes(cfg: ModelConfig) -> dict[str, int]:
    """Bytes per part as the engine holds them on the GPU (bf16 transformer with fp32 norms)."""
    model = _block_model(cfg, 1)
    block = sum(p.nbytes for p in model.blocks[0].parameters())
    linear = sum(m.weight.nbytes for n, m in model.blocks[0].named_modules()
                 if isinstance(m, torch.nn.Linear) and "audio_cross_attn" not in n)
    largest = max(m.weight.nbytes for m in model.blocks[0].modules() if isinstance(m, torch.nn.Linear))
    rest = sum(p.nbytes for p in model.parameters()) - block
    out = {"transformer_rest": rest, "block": block, "block_linear": linear, "largest_linear": largest,
           "blocks": cfg.num_layers}
    out.update(_encoder_bytes() if cfg == FULL else {"t5": 0, "clip": 0, "wav2vec": 0, "vae": 0})
    return out


@cache
def _encoder_bytes() -> dict[str, int]:
    """The full-size encoders and VAE, built from their configs with no data, in the engine's dtypes."""
    from diffusers import AutoencoderKLWan
    from transformers import (
        CLIPVisionConfig,
        CLIPVisionModel,
        UMT5Config,
        UMT5EncoderModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
    )

    def size(model: torch.nn.Module, bytes_per: int) -> int:
        return sum(p.numel() for p in model.parameters()) * bytes_per

    with _no_data():
        # umt5-xxl encoder (Wan's models_t5_umt5-xxl-enc-bf16.pth); its input embedding is tied, counted once
        t5 = UMT5EncoderModel(UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                         num_heads=64, feed_forward_proj="gated-gelu", tie_word_embeddings=False))
        clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                num_attention_heads=16, image_size=224, patch_size=14))
        wav2vec = Wav2Vec2Model(Wav2Vec2Config())  # chinese-wav2vec2-base: the base architecture
        vae = AutoencoderKLWan(base_dim=96)
        return {"t5": size(t5, 2), "clip": size(clip, 2), "wav2vec": size(wav2vec, 4), "vae": size(vae, 4)}


def resident_weights(cfg: ModelConfig, offload: bool, quantize: str) -> tuple[int, int]:
    """(bytes on the GPU for the whole job, extra bytes live during a forward: a dequantized weight)."""
    w = weight_bytes(cfg)
    blocks = w["block"] * w["blocks"]
    extra = 0
    if offload:  # diffusers' block-level group offload: one block on the GPU at a time
        blocks = w["block"]
    elif quantize != "none":  # bf16 -> 1 byte for the block linears torchao quantizes
        blocks -= w["blocks"] * w["block_linear"] // 2
        extra = w["largest_linear"]  # a layer's weight (or activation) converted for the matmul
    aux = w["t5"] + w["clip"] + w["vae"]  # wav2vec2 runs on the CPU
    return w["transformer_rest"] + blocks + aux, extra


# --- the plan --------------------------------------------------------------------------------------


def plan(setting: Setting, cfg: ModelConfig = FULL, resolution: str | None = None, vae_dim: int = 96) -> Plan:
    """Predicted peak of one GPU and the FLOPs of ``setting`` (see the module docstring).

    ``resolution``: the bucket table the size comes from, when known (the VAE's peak scales from its square);
    ``vae_dim``: the VAE's base width (96: Wan's).
    """
    import torch.distributed as dist

    if setting.gpus > 1 and dist.is_available() and dist.is_initialized():
        return _plan_elsewhere(setting, cfg, resolution, vae_dim)
    return _plan_here(setting, cfg, resolution, vae_dim)


def _plan_here(setting: Setting, cfg: ModelConfig, resolution: str | None, vae_dim: int = 96) -> Plan:
    w, h = setting.width, setting.height
    if w % 16 or h % 16:
        raise InvalidRequest(f"output size {w}x{h} must be a multiple of 16 on both sides; use a bucket")
    denoise, _ = _step_trace(cfg, w, h, setting.speakers, setting.passes_per_forward, setting.gpus)
    weights, extra = resident_weights(cfg, setting.offload, setting.quantize)
    return Plan(setting, cfg, weights, denoise + extra, vae_peak(resolution, w, h, vae_dim))


def square_bucket(resolution: str) -> tuple[int, int]:
    """(width, height) of a resolution's 1:1 bucket (640, 768, 960): the most tokens of its table."""
    h, w = TABLES[resolution]["1.00"]
    return w, h


def suggest(setting: Setting, gpu_gib: float, max_gpus: int, cfg: ModelConfig = FULL,
            resolution: str | None = None, vae_dim: int = 96) -> Setting | None:
    """The first setting like ``setting`` that fits, in order of what it costs: quantize (int8, then fp8),
    more GPUs per job, offload (slow: every block crosses PCIe each pass); None when none fits."""
    candidates = [replace(setting, quantize=q) for q in ("int8", "fp8") if not setting.offload]
    gpus = [g for g in (2, 4, 8) if setting.gpus < g <= max_gpus]
    candidates += [replace(setting, gpus=g) for g in gpus]
    candidates += [replace(setting, quantize=q, gpus=g) for g in gpus for q in ("int8", "fp8")]
    candidates += [replace(setting, offload=True, quantize="none", gpus=g) for g in (setting.gpus, *gpus)]
    for c in candidates:
        if resident_weights(cfg, c.offload, c.quantize)[0] / GIB + RESERVE_GIB > gpu_gib:
            continue  # the weights alone do not fit: no need to trace the activations
        if plan(c, cfg, resolution, vae_dim).fits(gpu_gib):
            return c
    return None


def fewest_gpus(setting: Setting, gpu_gib: float, cfg: ModelConfig = FULL, resolution: str | None = None) -> int:
    """The fewest GPUs per job that still fit (more jobs at once on the same cards); ``setting.gpus`` if none fewer."""
    for g in range(1, setting.gpus):
        if setting.gpus % g == 0 and plan(replace(setting, gpus=g), cfg, resolution).fits(gpu_gib):
            return g
    return setting.gpus


# --- the engine's check ----------------------------------------------------------------------------


def sampling_of(options: SamplingOptions) -> str:
    """The sampling mode with the engine options' guidance passes (all that matters for memory)."""
    passes = options.guidance.passes
    return next(name for name, o in SAMPLING_MODES.items() if o.guidance.passes == passes)


def how_to(setting: Setting, base: Setting) -> str:
    """What to change to go from ``base`` to ``setting``, as the settings a user sets."""
    changes = []
    if setting.quantize != base.quantize:
        changes.append(f"INFINITETALK_NEURAL_QUANTIZE={setting.quantize}"
                       + (" (FP8 needs an Ada/Hopper/Blackwell card)" if setting.quantize == "fp8" else ""))
    if setting.offload != base.offload:
        changes.append(f"INFINITETALK_NEURAL_OFFLOAD={'true' if setting.offload else 'false'}")
    if setting.gpus != base.gpus:
        changes.append(f"{setting.gpus} GPUs per job (--gpus)")
    if (setting.width, setting.height) != (base.width, base.height):
        changes.append(f"a {setting.width}x{setting.height} output")
    return " and ".join(changes) or "the same settings"


def refusal(setting: Setting, gpu_gib: float, cfg: ModelConfig = FULL, resolution: str | None = None,
            what: str = "this job", vae_dim: int = 96) -> str | None:
    """None when ``setting`` fits a ``gpu_gib`` card; else the one-line reason, naming what would fit."""
    p = plan(setting, cfg, resolution, vae_dim)
    if p.fits(gpu_gib):
        return None
    fix = suggest(setting, gpu_gib, max(setting.gpus, 8), cfg, resolution, vae_dim)
    advice = f"use {how_to(fix, setting)}" if fix else "no setting of the engine fits it; use a card with more memory"
    return (f"{what} ({setting.describe()}) needs about {p.peak_gib:.1f} GB of GPU memory plus {RESERVE_GIB:.0f} GB "
            f"of headroom, and this card has {gpu_gib:.1f} GB: {advice}")


@cache
def _plan_elsewhere(setting: Setting, cfg: ModelConfig, resolution: str | None, vae_dim: int) -> Plan:
    """``plan`` in a fresh process: a rank of a multi-GPU job already has a process group, and the plan of a
    multi-GPU setting needs its own fake one."""
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    payload = json.dumps({"setting": asdict(setting), "cfg": cfg.to_dict(), "resolution": resolution,
                          "vae_dim": vae_dim})
    out = subprocess.run([sys.executable, "-m", "infinitetalk.engines.neural.plan"], input=payload,
                         capture_output=True, text=True, check=True, timeout=600)
    weights, denoise, vae = json.loads(out.stdout.strip().splitlines()[-1])
    return Plan(setting, cfg, weights, denoise, vae)


def _main() -> None:
    """``python -m infinitetalk.engines.neural.plan``: a JSON setting on stdin -> its plan's byte counts."""
    import json
    import sys

    args = json.loads(sys.stdin.read())
    p = _plan_here(Setting(**args["setting"]), ModelConfig(**args["cfg"]), args["resolution"], args["vae_dim"])
    print(json.dumps([p.weights, p.denoise, p.vae]))


if __name__ == "__main__":
    _main()


def config_from_headers(layout, variant: str) -> ModelConfig | None:  # noqa: ANN001
    """The model sizes of a weights folder from its config.json and tensor headers (no tensor data);
    None when a file is missing (the loader then says which)."""
    import json

    from infinitetalk.engines.neural.weights import model_config_from_headers, safetensors_shapes

    try:
        base: dict = {}
        for shard in layout.base_shards:
            base.update(safetensors_shapes(shard))
        adapter = safetensors_shapes(layout.adapter(variant))
        return model_config_from_headers(json.loads(layout.base_config.read_text()), base, adapter)
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class FitCheck:
    """The engine's memory check: its settings, its model's sizes and the card's memory."""

    cfg: ModelConfig
    gpu_gib: float
    engine: Setting  # the engine's sampling, speakers, offload, quantization and GPUs per job
    vae_dim: int = 96

    def start(self) -> None:
        """Refuse settings whose smallest standard job (the 480p square bucket) does not fit."""
        w, h = square_bucket("480p")
        self._raise(replace(self.engine, width=w, height=h), "480p", "the engine's smallest job")

    def job(self, width: int, height: int, speakers: int, sampling: str | None = None) -> None:
        setting = replace(self.engine, width=width, height=height, speakers=speakers,
                          sampling=sampling or self.engine.sampling)
        self._raise(setting, None, "this job")

    def _raise(self, setting: Setting, resolution: str | None, what: str) -> None:
        from infinitetalk.errors import WontFit

        reason = refusal(setting, self.gpu_gib, self.cfg, resolution, what, self.vae_dim)
        if reason:
            raise WontFit(reason, field="resolution" if what == "this job" else None)


def card_gib(device: torch.device) -> float | None:
    """The memory of the card at ``device`` in GiB; None on a CPU."""
    if device.type != "cuda":
        return None
    return torch.cuda.get_device_properties(device).total_memory / GIB


def vae_dim_of(layout) -> int:  # noqa: ANN001
    """The VAE's base width from its file's first convolution (memory-mapped: no tensor data read)."""
    from infinitetalk.engines.neural.weights import pth_shapes

    try:
        return pth_shapes(layout.vae)["encoder.conv1.weight"][0]
    except (OSError, KeyError, RuntimeError):
        return 96


def benchmark_peak(cfg: ModelConfig, width: int, height: int, sampling: str, gpus: int = 1, quantize: str = "none",
                   vae_dim: int = 96) -> int:
    """What ``benchmarks/neural_gpu.py`` measures per row: its process holds the transformer and the VAE (no
    text, image or audio encoder) and resets the peak before the denoising steps, so the prediction is their
    weights plus one step's peak."""
    p = plan(Setting(width, height, sampling=sampling, quantize=quantize, gpus=gpus), cfg, None, vae_dim)
    w = weight_bytes(cfg)
    encoders = w["t5"] + w["clip"]
    return p.weights - encoders + p.denoise
