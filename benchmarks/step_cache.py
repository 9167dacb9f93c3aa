"""Step caches on the quality mode's denoising loop: speed-up and PSNR against the uncached run.

One 81-frame chunk's denoising loop as the pipeline runs it (40 steps, text + audio guidance: 3
batched passes, the flow-match Euler step, the clean first latent frame imposed after each step)
with random conditioning, uncached and then with each cache at several thresholds, on the same seed.
PSNR is over the chunk's final latents (peak = the uncached latents' range), not decoded pixels.
MagCache's ratios are calibrated first on another seed (``enable_step_cache`` does it on the first
run when it has none); that run is not timed.

    python benchmarks/step_cache.py --tiny        # CPU, tiny random model, 64x64: under a minute
    python benchmarks/step_cache.py               # CUDA, full size, random bf16 weights, 640x640
    python benchmarks/step_cache.py --weights DIR --size 480x480 --kinds first_block --thresholds 0.05,0.1

Random weights give real timings but not real PSNR: quote PSNR from a run with ``--weights``. A
full-size 40-step 3-pass chunk is minutes on one H100/H200, and every row is one chunk (+1 for
MagCache's calibration), so choose rows (``--kinds``, ``--thresholds``) to fit the time you have.
"""

from __future__ import annotations

import argparse
import time

import torch

from infinitetalk.engines.neural.caching import cache_stats, disable_step_cache, enable_step_cache
from infinitetalk.engines.neural.configs import FULL, TINY, ModelConfig
from infinitetalk.engines.neural.sampler import Guidance, euler_step, sigma_schedule
from infinitetalk.engines.neural.transformer import InfiniteTalkTransformer

THRESHOLDS = {"first_block": (0.03, 0.05, 0.1), "magcache": (0.03, 0.06, 0.12), "taylorseer": (2, 3, 4)}
GUIDANCE = Guidance(5.0, 4.0)  # the quality mode: 3 passes


def chunk_inputs(cfg: ModelConfig, latent_hw: tuple[int, int], image_tokens: int, seed: int, device, dtype):
    g = torch.Generator().manual_seed(seed)
    h, w = latent_hw

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device, dtype)

    audio = rand(1, 81, 5, cfg.audio_layers, cfg.audio_dim)
    return {
        "noise": rand(1, 16, 21, h, w).float(),
        "cond": rand(1, 20, 21, h, w),
        "text": torch.cat([rand(1, 512, cfg.text_dim), rand(1, 512, cfg.text_dim).expand(2, -1, -1)]),
        "clip": rand(1, image_tokens, cfg.image_dim).expand(3, -1, -1),
        "audio": [audio, audio, torch.zeros_like(audio)],  # cond, no text, no text and no audio
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def denoise(model, c: dict, steps: int, device, dtype) -> tuple[torch.Tensor, float]:
    """The chunk's final latents and the seconds its loop took: wall time on a GPU, this process's
    CPU time on the CPU (a shared CPU makes wall time swing several-fold between identical runs)."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    sigmas = sigma_schedule(steps, 7.0).tolist()
    x, clean = c["noise"].clone(), c["cond"][:, 4:, :1].float()
    x[:, :, :1] = clean
    sync(device)
    start = clock()
    for i in range(steps):
        inp = torch.cat([x.to(dtype), c["cond"]], dim=1).expand(3, -1, -1, -1, -1)
        out = model(inp, torch.full((3,), sigmas[i] * 1000.0, device=device), c["text"], c["clip"], c["audio"])
        x = euler_step(x, GUIDANCE.combine(list(out.float().chunk(3))), sigmas[i], sigmas[i + 1])
        x[:, :, :1] = clean
    sync(device)
    return x, clock() - start


def psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    mse = (x - ref).pow(2).mean()
    return float("inf") if mse == 0 else float(10 * torch.log10((ref.max() - ref.min()) ** 2 / mse))


def load_model(args, device: torch.device, dtype: torch.dtype):
    if args.weights:
        from pathlib import Path

        from infinitetalk.engines.neural.weights import WeightsLayout, load_transformer

        model = load_transformer(WeightsLayout(Path(args.weights)), device=device, dtype=dtype)
        return model, model.model_cfg
    if args.tiny:  # torch's default init, as the tests build it: its output moves with the input (0.02 does not)
        torch.manual_seed(0)
        return InfiniteTalkTransformer.from_model_config(TINY).eval().requires_grad_(False), TINY
    from neural_gpu import random_model  # same folder: the full architecture with random weights, on the GPU

    return random_model(FULL, device, dtype), FULL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny random model on the CPU (float32, 64x64)")
    ap.add_argument("--weights", help="a weights folder: the real transformer (PSNR then means something)")
    ap.add_argument("--size", default=None, help="HxW in pixels (default 640x640; 64x64 with --tiny)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--kinds", default="first_block,magcache,taylorseer")
    ap.add_argument("--thresholds", default=None, help="comma list used for every kind (default: 3 per kind)")
    ap.add_argument("--repeat", type=int, default=None, help="best of N timed runs per row (default 2 tiny, 1 GPU)")
    args = ap.parse_args()

    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("no CUDA device: run with --tiny on the CPU, or on a GPU machine for the full-size numbers")
    if args.tiny:
        torch.set_num_threads(1)  # tiny forwards: a second thread only adds spin-waits on a shared CPU
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    height, width = map(int, (args.size or ("64x64" if args.tiny else "640x640")).split("x"))
    repeat = args.repeat or (2 if args.tiny else 1)
    model, cfg = load_model(args, device, dtype)
    image_tokens = 5 if args.tiny else 257
    latent_hw = (height // 8, width // 8)
    inputs = chunk_inputs(cfg, latent_hw, image_tokens, 1, device, dtype)

    denoise(model, inputs, 2, device, dtype)  # warm-up (CUDA context, kernels)
    ref, ref_s = None, float("inf")
    for _ in range(repeat):
        ref, s = denoise(model, inputs, args.steps, device, dtype)
        ref_s = min(ref_s, s)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu (1 thread, CPU seconds)"
    source = args.weights or ("tiny random" if args.tiny else "full-size random")
    print(f"{name}; {source} weights; {dtype}; {width}x{height}; {args.steps} steps, 3 passes batched")
    header = f"{'cache':12} {'threshold':>9} {'s/chunk':>8} {'speed-up':>8} {'skipped':>8} {'PSNR dB':>8}"
    print(header)
    print("-" * len(header))
    print(f"{'none':12} {'':>9} {ref_s:8.2f} {1.0:8.2f} {0.0:8.0%} {'inf':>8}")
    for kind in args.kinds.split(","):
        thresholds = [float(t) for t in args.thresholds.split(",")] if args.thresholds else THRESHOLDS[kind]
        ratios = None
        if kind == "magcache":  # calibrate once, on another chunk than the one measured
            enable_step_cache(model, kind, 0.0, args.steps)
            denoise(model, chunk_inputs(cfg, latent_hw, image_tokens, 2, device, dtype), args.steps, device, dtype)
            denoise(model, inputs, 1, device, dtype)  # the next run starts: the ratios are final
            ratios = cache_stats(model)["mag_ratios"]
        for threshold in thresholds:
            best, out = float("inf"), None
            for _ in range(repeat):
                enable_step_cache(model, kind, threshold, args.steps, mag_ratios=ratios)
                out, s = denoise(model, inputs, args.steps, device, dtype)
                best = min(best, s)
                stats = cache_stats(model)
            disable_step_cache(model)
            print(
                f"{kind:12} {threshold:9g} {best:8.2f} {ref_s / best:8.2f} {stats['skipped_fraction']:8.0%} "
                f"{psnr(out, ref):8.1f}"
            )
        if ratios is not None:
            print(f"  MagCache ratios ({len(ratios)}): " + " ".join(f"{r:.3f}" for r in ratios))


if __name__ == "__main__":
    main()
