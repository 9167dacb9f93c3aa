"""``infinitetalk models``: download, verify and plan the neural engine's weights and memory."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Download and check the InfiniteTalk weights (neural engine).", no_args_is_help=True)

#: (Hugging Face repository, sub-folder of DIR, files to fetch or None for all, revision)
_SOURCES = {
    "base": ("Wan-AI/Wan2.1-I2V-14B-480P", "Wan2.1-I2V-14B-480P", None, None),
    # model.safetensors of this repo lives in its PR #1 (the official instructions fetch it from there)
    "wav2vec": ("TencentGameMate/chinese-wav2vec2-base", "chinese-wav2vec2-base", None, "refs/pr/1"),
}
_ADAPTER_REPO = "MeiGen-AI/InfiniteTalk"


@app.command()
def download(
    directory: Path = typer.Argument(..., help="Weights folder to fill (see docs/neural-engine.md)."),
    variant: str = typer.Option("single", "--variant", help="Adapter: single (one speaker) or multi (two)."),
) -> None:
    """Download the official weights (about 80 GB) into DIRECTORY in the layout the engine reads.

    Stopped or cut off, the same command resumes each file where it stopped. HF_ENDPOINT and HF_TOKEN work
    as for huggingface_hub.
    """
    from infinitetalk.engines.neural.download import fetch_repo  # imports huggingface_hub

    if variant not in ("single", "multi"):
        raise typer.BadParameter("use --variant single or --variant multi", param_hint="--variant")
    adapter = f"{variant}/infinitetalk.safetensors"
    jobs = [*_SOURCES.values(), (_ADAPTER_REPO, "InfiniteTalk", [adapter], None)]
    for repo, sub, patterns, revision in jobs:
        typer.echo(f"downloading {repo}{' ' + adapter if repo == _ADAPTER_REPO else ''} -> {directory / sub}")
        fetch_repo(repo, directory / sub, revision=revision, patterns=patterns, say=typer.echo)
    typer.echo(f"done; check the files with: infinitetalk models verify {directory} --variant {variant}")


@app.command()
def verify(
    directory: Path = typer.Argument(..., help="Weights folder to check."),
    variant: list[str] = typer.Option(["single"], "--variant", help="Adapter(s) to check: single, multi (repeatable)."),
) -> None:
    """Check every file, tensor name and shape against the manifest (reads headers only, no tensor data)."""
    from infinitetalk.engines.neural.verify import verify as run_verify  # imports torch

    checks = run_verify(directory, tuple(variant))
    for check in checks:
        typer.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.path}")
        for problem in check.problems:
            typer.echo(f"       {problem}")
    bad = [c for c in checks if not c.ok]
    if bad:
        typer.echo(
            f"{len(bad)} of {len(checks)} parts are missing or wrong; re-run `infinitetalk models download {directory}`"
        )
        raise typer.Exit(1)
    typer.echo(f"all {len(checks)} parts present with the expected tensors")


def _visible_gpu_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return min(torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())) / 2**30


@app.command()
def plan(
    gpu_memory: float = typer.Option(None, "--gpu-memory",
                                     help="GB (2^30 bytes) per GPU [default: the visible GPUs']."),
    gpus: int = typer.Option(1, "--gpus", min=1, help="GPUs sharing one job (sequence parallel)."),
    resolution: list[str] = typer.Option(["480p", "576p", "720p"], "--resolution",
                                         help="480p, 576p, 720p (repeatable)."),
    mode: list[str] = typer.Option(["i2v", "v2v"], "--mode", help="i2v (image) or v2v (video) (repeatable)."),
    speakers: list[int] = typer.Option([1, 2], "--speakers", help="1 or 2 (repeatable)."),
    sampling: list[str] = typer.Option(["quality", "fast", "fast-1p"], "--sampling", help="quality, fast, fast-1p."),
    tflops: float = typer.Option(None, "--tflops", help="The card's dense bf16 TFLOP/s [default: an H100 SXM's, 989]."),
    utilisation: float = typer.Option(None, "--utilisation", min=0.01, max=1.0,
                                      help="The fraction of that rate to state times at [default: 0.4]."),
) -> None:
    """Predict each setting's peak GPU memory and speed before downloading anything (shapes without data, CPU only).

    For each combination: the planned peak of one GPU at the resolution's largest (square) bucket, whether it
    fits, the settings that would (int8/fp8, more GPUs per job, offload), the FLOPs per video second and the
    seconds per video second they imply at the card's peak rate and at the stated utilisation.
    """

    from infinitetalk.engines.neural import plan as planner
    from infinitetalk.errors import InvalidRequest

    tflops = tflops or planner.H100_BF16_TFLOPS
    utilisation = utilisation or planner.STATED_UTILISATION
    memory = gpu_memory if gpu_memory is not None else _visible_gpu_gib()
    if memory is None:
        raise typer.BadParameter("no CUDA GPU is visible here: give the card's memory, e.g. --gpu-memory 80",
                                 param_hint="--gpu-memory")
    for r in resolution:
        if r not in planner.TABLES:
            raise typer.BadParameter(f"'{r}': use 480p, 576p or 720p", param_hint="--resolution")
    typer.echo(f"{memory:.0f} GB per GPU, {gpus} GPU{'s' * (gpus > 1)} per job; {planner.RESERVE_GIB:.0f} GB kept "
               f"free for the CUDA context; time at {tflops:.0f} TFLOP/s per GPU (100%) and at {utilisation:.0%}")
    cols = ("resolution", "mode", "spk", "sampling", "peak GB", "fits", "would fit with", "fit peak GB",
            "fewest GPUs", "PFLOP/video-s", "s/video-s 100%", f"s/video-s {utilisation:.0%}")
    rows = []
    try:
        for r in resolution:
            w, h = planner.square_bucket(r)
            for m in mode:
                for spk in speakers:
                    for smp in sampling:
                        s = planner.Setting(w, h, sampling=smp, speakers=spk, mode=m, gpus=gpus)
                        p = planner.plan(s, resolution=r)
                        fix, fix_peak, fewest = "-", "-", str(gpus)
                        if p.fits(memory):
                            fewest = str(planner.fewest_gpus(s, memory, resolution=r))
                        else:
                            better = planner.suggest(s, memory, max(gpus, 8), resolution=r)
                            fix = planner.how_to(better, s) if better else "nothing: a larger card"
                            fix_peak = f"{planner.plan(better, resolution=r).peak_gib:.1f}" if better else "-"
                            fewest = "-"
                        rows.append((f"{r} {w}x{h}", m, str(spk), smp, f"{p.peak_gib:.1f}",
                                     "yes" if p.fits(memory) else "no", fix, fix_peak, fewest,
                                     f"{p.flops_per_video_s / 1e15:.1f}", f"{p.seconds_per_video_s(tflops):.1f}",
                                     f"{p.seconds_per_video_s(tflops, utilisation):.1f}"))
    except InvalidRequest as exc:
        raise typer.BadParameter(exc.message) from None
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(n) for c, n in zip(cols, widths, strict=True)))
    for row in rows:
        typer.echo("  ".join(c.ljust(n) for c, n in zip(row, widths, strict=True)))
