"""Entry point: ``infinitetalk`` and its sub-commands.

Each command group lives in its own module and is registered here.
"""

from __future__ import annotations

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


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Self-hosted InfiniteTalk."""


# --- command registration (one line per module) ---
from infinitetalk.cli import generate, probe  # noqa: E402

app.command()(generate.generate)
app.command()(probe.probe)
from infinitetalk.cli import models  # noqa: E402
app.add_typer(models.app, name="models")
from infinitetalk.cli import serve  # noqa: E402
app.command("serve")(serve.serve)
from infinitetalk.cli.keys import keys_app  # noqa: E402
app.add_typer(keys_app, name="keys")
# --- end of command registration ---
