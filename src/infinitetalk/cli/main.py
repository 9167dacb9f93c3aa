"""Entry point: ``infinitetalk`` and its sub-commands.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

import os
import sys

import typer

from infinitetalk import __version__

app = typer.Typer(
    name="infinitetalk",
    help="Self-hosted InfiniteTalk: portrait (or video) + speech -> lip-synced talking video.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infinitetalk {__version__}")
        raise typer.Exit()


def _silence_native_stderr() -> None:
    """Keep mediapipe/TFLite's C++ start-up chatter off the terminal, not our own output.

    Native code writes to file descriptor 2; Python writes through ``sys.stderr``. Point fd 2
    at /dev/null and give ``sys.stderr`` a private copy of the real one. Set
    INFINITETALK_NATIVE_LOGS=1 to see the native logs.
    """
    if os.environ.get("INFINITETALK_NATIVE_LOGS"):
        return
    sys.stderr.flush()
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Self-hosted InfiniteTalk."""


# --- command registration (one line per module) ---
from infinitetalk.cli import eval, generate, probe  # noqa: E402

app.command()(generate.generate)
app.command()(probe.probe)
app.add_typer(eval.app, name="eval")
from infinitetalk.cli import models  # noqa: E402

app.add_typer(models.app, name="models")
from infinitetalk.cli import serve  # noqa: E402

app.command("serve")(serve.serve)
from infinitetalk.cli import worker  # noqa: E402

app.command("worker")(worker.worker)
from infinitetalk.cli import workers  # noqa: E402

app.command("workers")(workers.workers)
from infinitetalk.cli.keys import keys_app  # noqa: E402

app.add_typer(keys_app, name="keys")
# --- end of command registration ---


def main() -> None:
    """The ``infinitetalk`` program (in-process callers, e.g. tests, use ``app`` and keep their stderr)."""
    _silence_native_stderr()
    app(prog_name="infinitetalk")
