"""Benchmark the neural engine's core on one chunk, per mode and optimisation: s per chunk, s per video second,
peak memory, MFU, and how far each optimisation moves the output.

Full-size InfiniteTalk (Wan 2.1 I2V 14B + adapter) with random bf16 weights (as fast as the real
ones), the 480p 640x640 bucket, one 81-frame chunk (VAE encode of the condition, the denoising
steps, VAE decode, VAE encode of the 9 motion frames). Modes:

  quality  40 steps, text + audio guidance (3 passes per step)
  fast      4 steps, audio guidance only (2 passes per step; the lightx2v LoRA setting)
  fast-1p   4 steps, no guidance (1 pass per step)

Optimisation rows, each on top of the one before (``--opts``), each on a freshly built model with
``engines.neural.speed.apply_speed`` (the engine's own code path):

  eager      bf16, torch SDPA ("native")
  attention  + the attention backend of ``--attention`` (default _native_cudnn; flash / _flash_3 / sage when installed)
  compile    + torch.compile of the repeated blocks (the warm-up column holds the compile)
  fp8        + FP8 block linears (int8 weight-only where FP8 is unavailable, e.g. --tiny)
  cache      + a step cache (``--step-cache``), quality mode only, full step count

Columns: ``warm s`` the one-time warm-up (a worker pays it once: compile, autotune); ``s/chunk`` end to
end; ``s/video-s`` per second of video (a chunk adds 72 frames, 2.88 s); ``peak GB`` (max_memory_allocated over
the denoising steps); ``plan GB`` the memory planner's prediction of it (``plan.benchmark_peak``); ``MFU`` = counted
FLOPs (torch's FlopCounterMode on the meta device; an uncached step's) / time / this card's measured
dense bf16 matmul rate x GPUs; ``PSNR dB`` of the final latents against the eager row of the same mode
and seed (inf: identical). ``--quality-steps N`` times N quality steps and scales them to 40 (marked ~).

    python benchmarks/neural_gpu.py                           # CUDA, full size, every mode and row
    python benchmarks/neural_gpu.py --opts eager,compile --modes fast --attention flash
    python benchmarks/neural_gpu.py --gpus 8                  # one job on 8 GPUs (re-launches under torchrun)
    python benchmarks/neural_gpu.py --tiny                    # CPU, tiny config: proves the script runs
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKLWan
from torch.utils.flop_counter import FlopCounterMode

from infinitetalk.engines.neural.caching import cache_stats, disable_step_cache, enable_step_cache
from infinitetalk.engines.neural.configs import FULL, TINY, ModelConfig
from infinitetalk.engines.neural.parallel import enable_parallel
from infinitetalk.engines.neural.pipeline import SAMPLING_MODES
from infinitetalk.engines.neural.plan import benchmark_peak
from infinitetalk.engines.neural.sampler import Guidance, euler_step, sigma_schedule
from infinitetalk.engines.neural.speed import SpeedOptions, apply_speed, compile_blocks, warm_up
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer
from infinitetalk.engines.neural.vae import VideoVAE
from infinitetalk.errors import InvalidRequest

VIDEO_S_PER_CHUNK = 72 / 25  # a steady-state chunk adds 72 new frames at 25 fps
#: The tolerance a row must keep to be the default: PSNR of its final latents against the eager row's. 40 dB is
#: about a 1% relative error, the bound tests/neural/test_speed.py holds int8 to.
TOLERANCE_DB = 40.0
OPTS = ("eager", "attention", "compile", "fp8", "cache")


@dataclass(frozen=True)
class Mode:
    name: str
    steps: int
    guidance: Guidance
    shift: float


MODES = tuple(Mode(name, o.steps, o.guidance, o.shift) for name, o in SAMPLING_MODES.items())  # the engine's own


@dataclass(frozen=True)
class Row:
    """One optimisation row: the speed options, plus a step cache for the cache row."""

    name: str
    speed: SpeedOptions
    cache: str | None = None


def settings_of(row: Row) -> str:
    """The row as the settings that give it (the ones that differ from the defaults)."""
    plain, speed = SpeedOptions(), row.speed
    values = [("QUANTIZE", speed.quantize, plain.quantize), ("ATTENTION", speed.attention, plain.attention),
              ("COMPILE", str(speed.compile).lower(), str(plain.compile).lower()),
              ("STEP_CACHE", row.cache or "none", "none")]
    changed = [f"INFINITETALK_NEURAL_{name}={value}" for name, value, default in values if value != default]
    return " ".join(changed) or "the defaults"


def plan_rows(names: list[str], attention: str, quantize: str, step_cache: str) -> list[Row]:
    rows, speed = [], SpeedOptions()
    for name in names:
        if name == "attention":
            speed = replace(speed, attention=attention)
        elif name == "compile":
            speed = replace(speed, compile=True)
        elif name == "fp8":
            speed = replace(speed, quantize=quantize)
        rows.append(Row("+" + quantize if name == "fp8" else name, speed, step_cache if name == "cache" else None))
    return rows


def random_model(cfg: ModelConfig, device: torch.device, dtype: torch.dtype) -> InfiniteTalkTransformer:
    """The full architecture with random weights (seeded: every row gets the same), made directly on the
    device (no 60 GB fp32 detour)."""
    with torch.device("meta"):
        model = InfiniteTalkTransformer.from_model_config(cfg)
    model = model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    model.rope = WanRotaryPosEmbed(cfg.head_dim, (1, 2, 2), 1024).to(device)
    for name, p in model.named_parameters():  # bf16, but the norms stay fp32 as the loader keeps them
        keep = any(k in name for k in model._keep_in_fp32_modules)
        p.data = p.data.to(torch.float32 if keep else dtype)
    return model.eval().requires_grad_(False)


def model_inputs(
    cfg: ModelConfig, batch: int, latent_hw: tuple[int, int], device, dtype, image_tokens: int, latent_frames: int = 21
):
    """Seeded, so every row denoises the same chunk (the PSNR column compares rows)."""
    h, w = latent_hw
    frames = (latent_frames - 1) * cfg.vae_stride_t + 1
    g = torch.Generator().manual_seed(1) if device != "meta" else None

    def rand(*shape):
        if device == "meta":
            return torch.empty(*shape, device="meta", dtype=dtype)
        return torch.randn(*shape, generator=g).to(device, dtype)

    return (
        rand(batch, 36, latent_frames, h, w),
        torch.full((batch,), 500.0, device=device),
        rand(batch, 512, cfg.text_dim),
        rand(batch, image_tokens, cfg.image_dim),
        rand(batch, 1, frames, 5, cfg.audio_layers, cfg.audio_dim),
    )


@cache
def count_flops(cfg: ModelConfig, batch: int, latent_hw: tuple[int, int], image_tokens: int, latent_frames: int) -> int:
    """FLOPs of one batched forward, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = InfiniteTalkTransformer.from_model_config(cfg)
    inputs = model_inputs(cfg, batch, latent_hw, "meta", torch.float32, image_tokens, latent_frames)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops()


def matmul_rate(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul FLOP/s of this device at this dtype."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    reps = 50 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def measure_vae(vae: VideoVAE, size: tuple[int, int], frames: int, device) -> tuple[float, torch.Tensor]:
    """The chunk's VAE work, timed once (the fp32 VAE is the same in every row): encode the condition
    (first frame + zeros), decode the denoised latents, encode the motion frames. Returns the seconds
    and the condition [1, 20, T, h, w] (4-channel mask + latents) the rows denoise with."""
    height, width = size
    g = torch.Generator().manual_seed(2)
    video = (torch.rand(1, 3, frames, height, width, generator=g) * 2 - 1).to(device)
    vae.decode(vae.encode(video[:, :, :1]))  # the first call picks the conv algorithms
    sync(device)
    start = time.perf_counter()
    cond_lat = vae.encode(torch.cat([video[:, :, :1], torch.zeros_like(video[:, :, 1:])], dim=2))
    decoded = vae.decode(cond_lat)  # a stand-in for the denoised latents: same shape, same work
    vae.encode(decoded[:, :, -9:])
    sync(device)
    cond = torch.cat([torch.zeros(1, 4, *cond_lat.shape[2:], device=device), cond_lat], dim=1)
    return time.perf_counter() - start, cond


@torch.no_grad()
def run_steps(model, cond: torch.Tensor, cfg: ModelConfig, mode: Mode, steps: int, device, dtype, image_tokens):
    """The denoising loop of one chunk as the pipeline runs it, the first ``steps`` of the mode's schedule
    (all of them unless scaling); returns its seconds and the final latents."""
    passes = mode.guidance.passes
    latent_frames, lh, lw = cond.shape[2:]
    _, _, text, clip, audio = model_inputs(cfg, passes, (lh, lw), device, dtype, image_tokens, latent_frames)
    x = torch.randn(1, 16, latent_frames, lh, lw, generator=torch.Generator().manual_seed(3)).to(device)
    sigmas = sigma_schedule(mode.steps, mode.shift).tolist()
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        inp = torch.cat([x, cond], dim=1).to(dtype).expand(passes, -1, -1, -1, -1)
        out = model(inp, torch.full((passes,), sigmas[i] * 1000, device=device), text, clip, audio)
        v = mode.guidance.combine(list(out.float().chunk(passes)))
        x = euler_step(x, v, sigmas[i], sigmas[i + 1])
    sync(device)
    return time.perf_counter() - start, x.float().cpu()


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    mse = (x - ref).pow(2).mean().item()
    peak = (ref.max() - ref.min()).item()
    return math.inf if mse == 0 else 10 * math.log10(peak**2 / mse)


class Table:
    """Rows to stdout as they come (a run cut short keeps what it measured), and to ``--out`` as markdown."""

    COLS = ("mode", "opts", "steps", "passes", "gpus", "warm s", "s/chunk", "s/video-s", "steps s", "vae s")
    COLS += ("peak GB", "plan GB", "MFU", "PSNR dB")

    def __init__(self, out: Path | None, show: bool, title: str) -> None:
        self.out, self.show = out, show
        self.widths = [max(len(c), 8) for c in self.COLS]
        self.widths[1] = 26
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(f"{title}\n\n| " + " | ".join(self.COLS) + " |\n|" + "---|" * len(self.COLS) + "\n")
        self._print(title)
        self._print(" ".join(c.rjust(w) for c, w in zip(self.COLS, self.widths, strict=True)))
        self._print("-" * (sum(self.widths) + len(self.widths)))

    def _print(self, line: str) -> None:
        if self.show:
            print(line, flush=True)

    def add(self, cells: list[str]) -> None:
        self._print(" ".join(c.rjust(w) for c, w in zip(cells, self.widths, strict=True)))
        if self.out:
            with self.out.open("a") as f:
                f.write("| " + " | ".join(cells) + " |\n")

    def note(self, text: str) -> None:
        self._print(text)
        if self.out:
            with self.out.open("a") as f:
                f.write(f"\n{text}\n")


def relaunch_under_torchrun(gpus: int) -> None:
    """``--gpus N``: run this same command as N processes (torchrun sets RANK/WORLD_SIZE for each)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}", *sys.argv]
    os.execv(sys.executable, cmd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tiny", action="store_true", help="tiny config on the CPU (float32, 32x32, 9 frames): a smoke run"
    )
    ap.add_argument("--modes", default="fast,fast-1p,quality", help="comma list of quality, fast, fast-1p")
    ap.add_argument("--opts", default=",".join(OPTS), help=f"optimisation rows, cumulative: {', '.join(OPTS)}")
    ap.add_argument("--attention", default=None, help="backend of the attention row (default _native_cudnn)")
    ap.add_argument("--quantize", default=None, help="fp8 or int8 for the fp8 row (default fp8 where it runs)")
    ap.add_argument("--step-cache", default="magcache", help="cache row: magcache, taylorseer, first_block")
    ap.add_argument("--step-cache-threshold", type=float, default=None, help="cache row: threshold (its default)")
    ap.add_argument("--steps", type=int, default=None, help="override the step count of every mode (quick runs)")
    ap.add_argument("--quality-steps", type=int, default=None, help="time this many quality steps, scale to 40")
    ap.add_argument("--gpus", type=int, default=1, help="one job on N GPUs: re-launch under torchrun")
    ap.add_argument("--budget-s", type=float, default=None, help="skip the rows left when this much time is used")
    ap.add_argument("--out", type=Path, default=None, help="also write the table as markdown to this file")
    args = ap.parse_args()
    started = time.perf_counter()

    if args.gpus > 1 and "LOCAL_RANK" not in os.environ:
        relaunch_under_torchrun(args.gpus)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.tiny:
        torch.set_num_threads(max(1, 2 // world))
    cfg = TINY if args.tiny else FULL
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        print("no CUDA device: run with --tiny on the CPU, or on a GPU machine for the full-size numbers")
        return 2
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    # tiny: 32x32 and a 9-frame chunk; torch's CPU conv3d (no oneDNN path for the VAE's causal convs) makes
    # the tiny VAE take about a second per 64x64 frame on 2 cores
    size = (32, 32) if args.tiny else (640, 640)
    frames = 9 if args.tiny else 81
    latent_frames = (frames - 1) // cfg.vae_stride_t + 1
    image_tokens = 5 if args.tiny else 257
    latent_hw = (size[0] // 8, size[1] // 8)
    fp8_ok = device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)
    attention = args.attention or ("_native_cudnn" if device.type == "cuda" else "_native_math")
    quantize = args.quantize or ("fp8" if fp8_ok else "int8")
    rows = plan_rows(args.opts.split(","), attention, quantize, args.step_cache)
    by_name = {m.name: m for m in MODES}
    modes = [by_name[n] for n in args.modes.split(",")]
    if args.steps:
        modes = [replace(m, steps=args.steps) for m in modes]

    diffusers.utils.logging.set_verbosity_error()  # its "experimental attention backends" note would split the table
    rate = matmul_rate(device, dtype)
    vae = VideoVAE(AutoencoderKLWan(base_dim=8 if args.tiny else 96).to(device).eval().requires_grad_(False))
    vae_s, cond = measure_vae(vae, size, frames, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    table = Table(
        args.out if rank == 0 else None,
        show=rank == 0,
        title=f"device {name} x{world}; torch {torch.__version__}; {dtype}; {size[1]}x{size[0]}, {frames} frames; "
        f"matmul {rate / 1e12:.3g} TFLOP/s per device (measured); attention row {attention}; quantize row {quantize}; "
        f"VAE (fp32, the same in every row) {vae_s:.2f} s per chunk, timed once"
        + ("; tiny: compile rows trace with aot_eager (inductor's C++ build takes minutes here)" if args.tiny else ""),
    )

    def planned(mode_name: str, quantize: str) -> str:
        """The memory plan's prediction of this row's peak (engines/neural/plan.py): the first GPU run checks it."""
        try:
            peak = benchmark_peak(cfg, size[1], size[0], mode_name, world, quantize, vae_dim=8 if args.tiny else 96)
        except Exception as exc:  # noqa: BLE001 - a planner failure must not cost the measured row
            return f"({type(exc).__name__})"
        return f"{peak / 2**30:.1f}"

    baseline: dict[str, torch.Tensor] = {}  # the eager row's latents per mode: every row's PSNR
    previous: dict[str, torch.Tensor] = {}  # the last uncached row's: the cache row's own PSNR
    fastest: dict[str, tuple[float, Row]] = {}  # per mode: the quickest row within TOLERANCE_DB, fully timed
    failures = 0

    def over_budget(what: str) -> bool:
        if args.budget_s and time.perf_counter() - started > args.budget_s:
            table.note(f"{what}: skipped, the {args.budget_s:.0f} s budget is used")
            return True
        return False

    for row in rows:
        if over_budget(row.name):
            continue
        if row.cache:
            if args.quality_steps:
                table.note(f"{row.name}: skipped, a step cache needs every step (run without --quality-steps)")
                continue
        model = random_model(cfg, device, dtype)
        if world > 1:
            enable_parallel(model)
        try:  # tiny: the engine's path but inductor, which would take minutes on this CPU
            apply_speed(model, replace(row.speed, compile=False) if args.tiny else row.speed, device)
        except InvalidRequest as exc:
            table.note(f"{row.name}: not run here: {exc.message}")
            failures += 1
            continue
        if args.tiny and row.speed.compile:
            compile_blocks(model, backend="aot_eager")
        parts = ("bf16" if dtype == torch.bfloat16 else "fp32", row.speed.attention.removeprefix("native"))
        parts += ("compile" if row.speed.compile else "", row.speed.quantize.removeprefix("none"), row.cache or "")
        label = "+".join(p for p in parts if p)
        for mode in [m for m in modes if row.cache is None or m.name == "quality"]:
            if over_budget(f"{row.name} {mode.name}"):
                continue
            steps = mode.steps
            if mode.name == "quality" and args.quality_steps:
                steps = min(args.quality_steps, mode.steps)
            passes = mode.guidance.passes
            warm_s = warm_up(
                model, height=size[0], width=size[1], passes=(passes,), image_tokens=image_tokens, frames=frames
            )
            if row.cache:
                enable_step_cache(model, row.cache, args.step_cache_threshold, mode.steps)
                if cache_stats(model)["calibrating"]:  # MagCache measures the model's ratios on one full run
                    t0 = time.perf_counter()
                    run_steps(model, cond, cfg, mode, steps, device, dtype, image_tokens)
                    warm_s += time.perf_counter() - t0
                before = cache_stats(model)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            timed_s, latents = run_steps(model, cond, cfg, mode, steps, device, dtype, image_tokens)
            if row.cache:
                after = cache_stats(model)
                disable_step_cache(model)
                calls, ran = after["calls"] - before["calls"], after["block_runs"] - before["block_runs"]
                skipped = 1 - ran / (calls * cfg.num_layers)
            steps_s = timed_s * mode.steps / steps
            chunk_s = steps_s + vae_s
            mark = "~" if steps != mode.steps else ""
            peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "-"
            flops = count_flops(cfg, passes, latent_hw, image_tokens, latent_frames)
            mfu = flops * mode.steps / steps_s / (rate * world)
            key = f"{mode.name}/{steps}"
            if row.name == "eager":
                baseline[key] = latents
            close = f"{psnr(latents, baseline[key]):.1f}" if key in baseline else "n/a"
            if key in baseline and steps == mode.steps and psnr(latents, baseline[key]) >= TOLERANCE_DB:
                if mode.name not in fastest or chunk_s < fastest[mode.name][0]:
                    fastest[mode.name] = (chunk_s, row)
            uncached = previous.get(key)
            if not row.cache:
                previous[key] = latents
            table.add(
                [mode.name, label, f"{mode.steps}{mark}", str(passes), str(world), f"{warm_s:.2f}"]
                + [f"{mark}{chunk_s:.2f}", f"{mark}{chunk_s / VIDEO_S_PER_CHUNK:.2f}", f"{mark}{steps_s:.2f}"]
                + [f"{vae_s:.2f}", peak, planned(mode.name, row.speed.quantize), f"{mfu:.1%}", close]
            )
            if row.cache:
                against = f"{psnr(latents, uncached):.1f} dB" if uncached is not None else "n/a"
                table.note(
                    f"  {row.cache} (threshold {after['threshold']}) on {mode.name}: {skipped:.0%} of the block "
                    f"computations skipped; PSNR against the same options uncached {against}"
                )
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for name, (chunk_s, row) in fastest.items():
        table.note(f"default for {name} (the fastest row within {TOLERANCE_DB:.0f} dB of eager, "
                   f"{chunk_s / VIDEO_S_PER_CHUNK:.2f} s per video second): {settings_of(row)}")
    per_pass = count_flops(cfg, 1, latent_hw, image_tokens, latent_frames)
    table.note(
        f"MFU: the denoising steps' counted FLOPs ({per_pass / 1e12:.3g} TFLOP per pass; a cached step counted as "
        "if computed) / time / the measured bf16 matmul rate; the VAE is in s/chunk, not in MFU. PSNR: final "
        "latents against the eager row of the same mode."
        + (
            f" ~: quality timed on {args.quality_steps} steps and scaled to {by_name['quality'].steps}."
            if args.quality_steps
            else ""
        )
        + f" Total {time.perf_counter() - started:.0f} s."
    )
    if world > 1:
        torch.distributed.destroy_process_group()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
