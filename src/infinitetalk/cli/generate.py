"""``infinitetalk generate``: one talking video on this machine, with a progress bar."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from infinitetalk.cli.errors import fail
from infinitetalk.config import get_settings
from infinitetalk.demo import demo_inputs
from infinitetalk.engines import CancelToken, Engine, load_engine
from infinitetalk.errors import Canceled, InfiniteTalkError, InvalidRequest, StorageFull
from infinitetalk.media.disk import is_disk_full
from infinitetalk.render.checkpoint import WorkFolder
from infinitetalk.render.render import RenderResult, render
from infinitetalk.runtime import launch
from infinitetalk.schema import AudioLayout, GenerationRequest, Resolution

console = Console(stderr=True)
#: The engines a person picks from. The engine registry also has "instant" (solid frames, for API tests and
#: load benchmarks), which makes a useless video here, so the command neither lists nor takes it.
USER_ENGINES = ("auto", "preview", "neural")


def parse_bbox(text: str) -> dict[str, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidRequest(f"--bbox '{text}': give four numbers x0,y0,x1,y1 in source pixels", field="bbox") from None
    return {"x0": x0, "y0": y0, "x1": x1, "y1": y1}


def generate(
    output: Path = typer.Option(..., "-o", "--output", help="Where to write the MP4."),
    image: str | None = typer.Option(None, "--image", help="Portrait: path, URL or data: URI."),
    video: str | None = typer.Option(None, "--video", help="Source video to dub (video-to-video)."),
    audio: list[str] | None = typer.Option(None, "--audio", help="Speech; give it twice for two speakers."),
    audio_layout: AudioLayout = typer.Option(AudioLayout.PARA, "--audio-layout", help="Two speakers: together or in turn."),
    mask: list[str] | None = typer.Option(None, "--mask", help="Mask image per speaker (white = face to animate)."),
    bbox: list[str] | None = typer.Option(None, "--bbox", help="Face box per speaker: x0,y0,x1,y1."),
    prompt: str | None = typer.Option(None, "--prompt", help="What the scene shows (neural engine)."),
    resolution: Resolution = typer.Option(Resolution.P480, "--resolution"),
    seed: int = typer.Option(-1, "--seed", help="-1 = random; the seed used is printed."),
    fps: int = typer.Option(25, "--fps", help="Output frame rate, 16..30."),
    engine: str = typer.Option("auto", "--engine", help="preview (CPU, no downloads), neural (InfiniteTalk on a "
                               "GPU, needs --weights) or auto (neural when --weights is given, else preview)."),
    weights: Path | None = typer.Option(None, "--weights", help="Folder of the neural engine's weights."),
    demo: bool = typer.Option(False, "--demo", help="Use a bundled portrait and speech (no inputs needed)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    resume: bool = typer.Option(False, "--resume", help="Go on with an interrupted run of the same command from "
                                "its last finished chunk (kept in OUTPUT.parts/)."),
    gpus: str | None = typer.Option(None, "--gpus", help="Run this one job on several GPUs of this machine, e.g. "
                                    "0-7 or 0,1 (neural engine; one process per GPU under torchrun)."),
) -> None:
    """Make a talking video from a portrait (or a video) and speech."""
    if demo:
        portrait, speech = demo_inputs()
        image, audio = image or str(portrait), audio or [str(speech)]
    try:
        if not audio:
            raise InvalidRequest("give the speech with --audio FILE (or try --demo)", field="audio")
        if engine not in USER_ENGINES:
            raise InvalidRequest(f"--engine {engine}: choose {', '.join(USER_ENGINES)}" + (
                " ('instant' draws solid frames with no face: a stand-in for API tests and load benchmarks)"
                if engine == "instant" else ""), field="engine")
        request = GenerationRequest.parse(
            {
                "image": image,
                "video": video,
                "audio": audio,
                "audio_layout": audio_layout,
                "mask": mask or None,
                "bbox": [parse_bbox(b) for b in bbox] if bbox else None,
                "prompt": prompt,
                "resolution": resolution,
                "seed": seed,
                "fps": fps,
            }
        )
        if gpus is not None and not launch.in_rank():  # start one process per GPU and wait for them
            ids = launch.parse_gpus(gpus)
            launch.require_neural(engine, weights, "--gpus")
            launch.check_gpus(ids)
            os.environ[_INVOKED_AS] = json.dumps([sys.argv, sys.orig_argv])
            raise typer.Exit(launch.run_ranks(ids, sys.argv[1:], request.resolved_seed()))
        make = partial(_make, request, output, resume=resume, quiet=quiet)
        if gpus is None:
            result = make(load_engine(name=engine, weights_dir=weights), CancelToken())
        else:  # a rank of the job started above
            led = launch.rank_session(get_settings(), lambda: load_engine(name=engine, weights_dir=weights, warm=False),
                                      partial(_lead, make))
            if led is None:  # a rank that followed rank 0, which alone writes the video and shows progress
                return
            result = led
    except (InfiniteTalkError, OSError) as exc:
        if is_disk_full(exc):  # however deep the writer or an engine wrapped it
            fail(StorageFull(f"the disk is full while writing {output}; free some space and run again"))
        if isinstance(exc, OSError):
            raise
        fail(exc)
    speed = result.elapsed_s / max(result.duration_s, 1e-9)
    console.print(
        f"wrote [bold]{result.path}[/bold]: {result.width}x{result.height}, {result.num_frames} frames at "
        f"{result.fps} fps ({result.duration_s:.2f} s), engine {result.engine}, seed {result.seed}, "
        f"{result.elapsed_s:.1f} s ({speed:.2f} s per second of video)",
        highlight=False,
        soft_wrap=True,
    )


def _make(request: GenerationRequest, output: Path, engine: Engine, cancel: CancelToken, *, resume: bool,
          quiet: bool) -> RenderResult:
    """The video, with its progress bar, kept chunk by chunk in the work folder until it is whole."""
    work = WorkFolder(work_folder(output))
    interrupted = work.load() is not None
    if resume and not interrupted:
        console.print(f"nothing to resume in {work.folder}; starting from the beginning", highlight=False)
    elif interrupted and not resume:
        console.print(f"an interrupted run's chunks in {work.folder} are discarded (--resume goes on with them)",
                      highlight=False)
        work.clear()
    try:
        with _progress_bar(quiet) as bar:
            task = bar.add_task("preparing", total=1.0)
            result = render(
                request, output, engine=engine, work=work, strict_resume=resume, cancel=cancel,
                progress=lambda fraction, stage: bar.update(task, completed=fraction, description=stage),
            )
    except (KeyboardInterrupt, Canceled):
        _interrupted(work)
    shutil.rmtree(work.folder, ignore_errors=True)
    return result


def _lead(make: Callable[[Engine, CancelToken], RenderResult], engine: Engine) -> RenderResult:
    """Rank 0 of a --gpus job: ``make`` on the engine that leads the other ranks."""
    cancel = CancelToken()
    # Ctrl-C (or a kill) reaches every rank; rank 0 stops them all at the next step, where they are in step
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: cancel.cancel())
    return make(engine, cancel)


def work_folder(output: Path) -> Path:
    """Where a run keeps its finished chunks until the video is whole: beside the output, named after it."""
    return output.with_name(f"{output.name}.parts")


#: The user's own command line, handed to the ranks of a --gpus job (torchrun starts them as another program),
#: so rank 0's Ctrl-C hint names what the user typed.
_INVOKED_AS = "INFINITETALK_INVOKED_AS"


def resume_command(argv: list[str], orig_argv: list[str]) -> str:
    """The command that goes on, as the user can paste it into the shell they ran this one from.

    The program is ``argv[0]`` as typed (``.venv/bin/infinitetalk``, as the README writes it); under
    ``python -m infinitetalk.cli`` that is the module's file, which cannot run alone, so the interpreter's own
    words (``orig_argv``) are used up to the arguments.
    """
    args = argv[1:]
    program = [argv[0]]
    if Path(argv[0]).name == "__main__.py" and len(orig_argv) >= len(args):
        program = orig_argv[: len(orig_argv) - len(args)]
    return shlex.join([*program, *args, *([] if "--resume" in args else ["--resume"])])


def _interrupted(work: WorkFolder) -> NoReturn:
    """Ctrl-C: what is kept, and the command that goes on from there."""
    saved = work.load()
    argv, orig_argv = json.loads(os.environ.get(_INVOKED_AS, "null")) or (sys.argv, sys.orig_argv)
    command = resume_command(argv, orig_argv)
    if saved is None:
        console.print("interrupted before the first chunk was finished; nothing to resume", highlight=False)
    else:
        checkpoint = saved[0]
        console.print(f"interrupted after chunk {len(checkpoint.segments)} of {checkpoint.chunks} "
                      f"({checkpoint.frames_done / checkpoint.fps:.1f} s of video kept in {work.folder}); "
                      f"go on with:\n  {command}", highlight=False, soft_wrap=True)
    raise typer.Exit(130)


def _progress_bar(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        # a bar is for a terminal: in a log or a pipe it draws nothing and leaves a blank line behind
        disable=quiet or not console.is_terminal,
        transient=True,  # the summary line replaces the bar; an error leaves only its own line
    )
