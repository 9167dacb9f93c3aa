"""Benchmark the neural engine's core on one chunk: seconds per chunk, per second of video, memory, MFU.

Full-size InfiniteTalk (Wan 2.1 I2V 14B + adapter) with random bf16 weights (as fast as the real
ones), the 480p 640x640 bucket, one 81-frame chunk (VAE encode of the condition, the denoising
steps, VAE decode, VAE encode of the 9 motion frames). Two modes:

  quality  40 steps, text + audio guidance (3 passes per step)
  fast      4 steps, audio guidance only (2 passes per step; the lightx2v LoRA setting)
  fast-1p   4 steps, no guidance (1 pass per step), for comparison (--modes quality,fast,fast-1p)

Model FLOP utilisation = FLOPs counted by torch's FlopCounterMode on the meta device / time /
this card's measured dense bf16 matmul rate. Targets on one H100: fast <= 8 s of wall time per
second of video; utilisation >= 45% in both modes.

    python benchmarks/neural_gpu.py                      # CUDA, full size, both modes, compile off and on
    python benchmarks/neural_gpu.py --attention flash --compile on
    python benchmarks/neural_gpu.py --tiny               # CPU, tiny config: proves the script runs
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import torch
from diffusers import AutoencoderKLWan
from torch.utils.flop_counter import FlopCounterMode

from infinitetalk.engines.neural.configs import FULL, TINY, ModelConfig
from infinitetalk.engines.neural.sampler import Guidance, euler_step, sigma_schedule
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer
from infinitetalk.engines.neural.vae import VideoVAE

VIDEO_S_PER_CHUNK = 72 / 25  # a steady-state chunk adds 72 new frames at 25 fps


@dataclass(frozen=True)
class Mode:
    name: str
    steps: int
    guidance: Guidance


MODES = (
    Mode("quality", 40, Guidance(5.0, 4.0)),
    Mode("fast", 4, Guidance(1.0, 2.0)),
    # not in the brief's table: the distilled LoRA without any guidance, one pass per step
    Mode("fast-1p", 4, Guidance(1.0, 1.0)),
)


def random_model(cfg: ModelConfig, device: torch.device, dtype: torch.dtype) -> InfiniteTalkTransformer:
    """The full architecture with random weights, made directly on the device (no 60 GB fp32 detour)."""
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


def model_inputs(cfg: ModelConfig, batch: int, latent_hw: tuple[int, int], device, dtype, image_tokens: int):
    h, w = latent_hw
    return (
        torch.randn(batch, 36, 21, h, w, device=device, dtype=dtype),
        torch.full((batch,), 500.0, device=device),
        torch.randn(batch, 512, cfg.text_dim, device=device, dtype=dtype),
        torch.randn(batch, image_tokens, cfg.image_dim, device=device, dtype=dtype),
        torch.randn(batch, 1, 81, 5, cfg.audio_layers, cfg.audio_dim, device=device, dtype=dtype),
    )


def count_flops(cfg: ModelConfig, batch: int, latent_hw: tuple[int, int], image_tokens: int) -> int:
    """FLOPs of one batched forward, counted on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = InfiniteTalkTransformer.from_model_config(cfg)
        inputs = model_inputs(cfg, batch, latent_hw, "meta", torch.float32, image_tokens)
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
def run_chunk(
    model, vae: VideoVAE, cfg: ModelConfig, mode: Mode, size: tuple[int, int], device, dtype, image_tokens: int
) -> dict:
    """One 81-frame chunk as the pipeline runs it; returns timings in seconds."""
    height, width = size
    lh, lw = height // 8, width // 8
    passes = mode.guidance.passes
    x0, t, text, clip, audio = model_inputs(cfg, passes, (lh, lw), device, dtype, image_tokens)
    frames = torch.rand(1, 3, 81, height, width, device=device) * 2 - 1
    sync(device)
    start = time.perf_counter()
    cond_lat = vae.encode(torch.cat([frames[:, :, :1], torch.zeros_like(frames[:, :, 1:])], dim=2))
    cond = torch.cat([torch.zeros(1, 4, *cond_lat.shape[2:], device=device), cond_lat], dim=1)
    x = torch.randn(1, 16, 21, lh, lw, device=device)
    sigmas = sigma_schedule(mode.steps, 7.0).tolist()
    sync(device)
    t_enc = time.perf_counter()
    for i in range(mode.steps):
        inp = torch.cat([x, cond], dim=1).to(dtype).expand(passes, -1, -1, -1, -1)
        out = model(inp, torch.full((passes,), sigmas[i] * 1000, device=device), text, clip, audio)
        v = mode.guidance.combine(list(out.float().chunk(passes)))
        x = euler_step(x, v, sigmas[i], sigmas[i + 1])
    sync(device)
    t_steps = time.perf_counter()
    video = vae.decode(x)
    vae.encode(video[:, :, -9:])
    sync(device)
    end = time.perf_counter()
    return {"chunk_s": end - start, "steps_s": t_steps - t_enc, "vae_s": (t_enc - start) + (end - t_steps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny config on the CPU (float32, 64x64): a smoke run")
    ap.add_argument(
        "--attention", default="native", help="diffusers attention backend: native, flash, _flash_3, sage, ..."
    )
    ap.add_argument(
        "--compile", choices=["off", "on", "both"], default="both", help="torch.compile of the repeated blocks"
    )
    ap.add_argument("--modes", default="quality,fast", help="comma list of quality, fast")
    ap.add_argument("--steps", type=int, default=None, help="override the step count of every mode (quick runs)")
    args = ap.parse_args()

    torch.set_num_threads(2) if args.tiny else None
    cfg = TINY if args.tiny else FULL
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("no CUDA device: run with --tiny on the CPU, or on a GPU machine for the full-size numbers")
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    size = (64, 64) if args.tiny else (640, 640)
    image_tokens = 5 if args.tiny else 257

    rate = matmul_rate(device, dtype)
    model = random_model(cfg, device, dtype)
    if args.attention != "native":
        model.set_attention_backend(args.attention)
    vae_module = AutoencoderKLWan(base_dim=8 if args.tiny else 96).to(device).eval().requires_grad_(False)
    vae = VideoVAE(vae_module)
    if args.tiny:
        vae.mean, vae.inv_std = vae.mean.to(device), vae.inv_std.to(device)

    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    params = sum(p.numel() for p in model.parameters())
    print(
        f"device {name}; {params / 1e9:.2f} B params; {dtype}; {size[1]}x{size[0]}; attention {args.attention}; "
        f"measured matmul {rate / 1e12:.3g} TFLOP/s"
    )
    modes = [m for m in MODES if m.name in args.modes.split(",")]
    if args.steps:
        modes = [Mode(m.name, args.steps, m.guidance) for m in modes]
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    header = (
        f"{'mode':8} {'steps':>5} {'passes':>6} {'compile':>7} {'s/chunk':>9} {'s/video-s':>9} "
        f"{'steps s':>8} {'vae s':>7} {'peak GB':>8} {'MFU':>6}"
    )
    print(header)
    print("-" * len(header))
    for compiled in compiles:
        if compiled:
            model.compile_repeated_blocks(fullgraph=False, dynamic=False)
        for mode in modes:
            flops = count_flops(cfg, mode.guidance.passes, (size[0] // 8, size[1] // 8), image_tokens)
            run_chunk(model, vae, cfg, Mode(mode.name, 1, mode.guidance), size, device, dtype, image_tokens)  # warm-up
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            r = run_chunk(model, vae, cfg, mode, size, device, dtype, image_tokens)
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
            mfu = flops * mode.steps / r["steps_s"] / rate
            print(
                f"{mode.name:8} {mode.steps:>5} {mode.guidance.passes:>6} {'on' if compiled else 'off':>7} "
                f"{r['chunk_s']:>9.2f} {r['chunk_s'] / VIDEO_S_PER_CHUNK:>9.2f} "
                f"{r['steps_s']:>8.2f} {r['vae_s']:>7.2f} "
                f"{peak:>8.1f} {mfu:>6.1%}"
            )
    per_pass = count_flops(cfg, 1, (size[0] // 8, size[1] // 8), image_tokens)
    print(
        f"(MFU counts the transformer's denoising steps: {per_pass / 1e12:.3g} TFLOP per pass; "
        "the VAE time is in s/chunk but not in MFU)"
    )


if __name__ == "__main__":
    main()
