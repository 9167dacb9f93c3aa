"""``infinitetalk eval``: judge a generated video (lip-sync score, contact sheet)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Measure a generated video: lip sync against speech, and a contact sheet.", no_args_is_help=True)


@app.command()
def sync(
    video: Path = typer.Argument(..., exists=True, dir_okay=False, help="The talking video."),
    audio: Path | None = typer.Option(None, "--audio", exists=True, dir_okay=False,
                                      help="Speech to score against (default: the video's own audio)."),
) -> None:
    """Pearson r of mouth opening vs the speech's loudness, at lag 0 and the best lag within +-5 frames."""
    from infinitetalk.eval import sync_score

    typer.echo(str(sync_score(video, audio)))


@app.command()
def sheet(
    video: Path = typer.Argument(..., exists=True, dir_okay=False, help="The talking video."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
    frames: int = typer.Option(8, "--frames", min=1, max=64, help="How many evenly spaced frames."),
) -> None:
    """Draw evenly spaced frames in a grid, so a person can judge the look."""
    from infinitetalk.eval import contact_sheet

    typer.echo(f"wrote {contact_sheet(video, output, frames=frames)}")
