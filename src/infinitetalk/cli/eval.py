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
    """Pearson r of mouth opening vs the speech's loudness, at lag 0 and the best lag within +-5 frames;
    then each eye's blinks and how much the mouth moves while nobody speaks.

    r of 0.5 or more within 2 frames of lag 0 is good lip sync; about 0 is none (a video scored against
    another sentence). A blink that closes one eye only is counted apart. The mouth in silence (speech
    found by the silero-vad model when installed) moving under 25% as much as in speech rests."""
    from infinitetalk.eval import face_behaviour, sync_score

    try:
        score = sync_score(video, audio)
        blinks, silent = face_behaviour(video, audio)
    except InfiniteTalkError as exc:  # not a video, no speech to score against: one line, not a traceback
        fail(exc)
    typer.echo(str(score))
    typer.echo(score.reading())
    typer.echo(str(blinks))
    typer.echo(str(silent))


@app.command()
def sheet(
    video: Path = typer.Argument(..., exists=True, dir_okay=False, help="The talking video."),
    output: Path = typer.Option(..., "-o", "--output", help="PNG to write."),
    frames: int = typer.Option(8, "--frames", min=1, max=64, help="How many evenly spaced frames."),
    marks: bool = typer.Option(True, "--marks/--no-marks",
                               help="Label frames in silence or a blink, and draw the timeline of speech, "
                                    "mouth and blinks under the grid (a few seconds more)."),
) -> None:
    """Draw evenly spaced frames in a grid, so a person can judge the look."""
    from infinitetalk.eval import contact_sheet

    try:
        written = contact_sheet(video, output, frames=frames, marks=marks)
    except InfiniteTalkError as exc:
        fail(exc)
    typer.echo(f"wrote {written}")
