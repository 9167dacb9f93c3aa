"""``infinitetalk models``: download and verify the neural engine's weights folder."""

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
    """Download the official weights (about 80 GB) into DIRECTORY in the layout the engine reads."""
    from huggingface_hub import hf_hub_download, snapshot_download  # only this command needs the hub

    if variant not in ("single", "multi"):
        raise typer.BadParameter("use --variant single or --variant multi", param_hint="--variant")
    for repo, sub, patterns, revision in _SOURCES.values():
        typer.echo(f"downloading {repo} -> {directory / sub}")
        snapshot_download(repo, local_dir=directory / sub, allow_patterns=patterns, revision=revision)
    typer.echo(f"downloading {_ADAPTER_REPO} {variant}/infinitetalk.safetensors -> {directory / 'InfiniteTalk'}")
    hf_hub_download(_ADAPTER_REPO, f"{variant}/infinitetalk.safetensors", local_dir=directory / "InfiniteTalk")
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
