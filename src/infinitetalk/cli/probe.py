"""``infinitetalk probe FILE``: what a media file holds, measured."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from infinitetalk.cli.errors import fail
from infinitetalk.errors import InfiniteTalkError
from infinitetalk.media.probe import probe as probe_file


def probe(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Audio, video or image file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show a media file's duration (measured by decoding), streams, codecs and size."""
    try:
        info = probe_file(path)
    except InfiniteTalkError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(info.to_dict(), indent=2))
        return
    console = Console()
    console.print(f"{info.path}: {info.container}, {info.size_bytes:,} bytes, {info.duration_s:.3f} s")
    table = Table("stream", "kind", "codec", "size", "fps", "frames", "sample rate", "channels")
    for s in info.streams:
        size = f"{s.width}x{s.height}" if s.width else ""
        table.add_row(*(str(v) if v is not None else "" for v in (s.index, s.kind, s.codec, size, s.fps, s.frames,
                                                                      s.sample_rate, s.channels)))
    console.print(table)
