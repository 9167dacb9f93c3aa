"""How every command ends on a user-facing error: one line, ``error CODE: message``, exit code 2."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

from infinitetalk.errors import InfiniteTalkError

#: Exit code for bad input or a refused operation (1 stays free for crashes).
EXIT_ERROR = 2
#: Exit code for a start that could not happen here and now (a part that never answered, a taken port, missing
#: weights or GPUs): a supervisor (compose, systemd) can tell it from bad input.
EXIT_CANNOT_START = 3


def fail(exc: InfiniteTalkError, *, exit_code: int = EXIT_ERROR) -> NoReturn:
    Console(stderr=True).print(
        f"[red]error[/red] [bold]{exc.code}[/bold]: {exc.message}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(exit_code) from None
