"""``infinitetalk eval``: judge a generated video (lip-sync score, contact sheet)."""

from __future__ import annotations

from pathlib import Path

import typer

from infinitetalk.cli.errors import fail
from infinitetalk.errors import InfiniteTalkError

app = typer.Typer(help="Measure a generated video: lip sync against speech, and a contact sheet.", no_args_is_help=True)


@app.command()
def sync(
    video: Path = typer.Argument(..., exists=True, dir_okay=False, help="The talking video."),
    audio: Path | None = typer.Option(None, "--audio", exists=True, dir_okay=False,
                                      help="Speech to score against (default: the video's own audio)."),
) -> None:
    """Pearson r of mouth opening vs the speech's loudness, at lag 0 and the best lag within +-5 frames.

    r of 0.5 or more within 2 frames of lag 0 is good lip sync; about 0 is none (a video scored against
    another sentence). The last line says which."""
    from infinitetalk.eval import sync_score

    try:
        score = sync_score(video, audio)
    except InfiniteTalkError as exc:  # not a video, no speech to score against: one line, not a traceback
        fail(exc)
    typer.echo(str(score))
    typer.echo(score.reading())


@app.command()
def sheet(
    video: Path = typer.Argument(..., exists=True, dir_okay=False, help="The talking video."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
    frames: int = typer.Option(8, "--frames", min=1, max=64, help="How many evenly spaced frames."),
) -> None:
    """Draw evenly spaced frames in a grid, so a person can judge the look."""
    from infinitetalk.eval import contact_sheet

    try:
        written = contact_sheet(video, output, frames=frames)
    except InfiniteTalkError as exc:
        fail(exc)
    typer.echo(f"wrote {written}")
