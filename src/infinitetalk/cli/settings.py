"""Settings for the commands that read them (serve, keys): flags over INFINITETALK_* variables, a bad value
as one error line, and where the data lives, said out loud so nobody works on a database the server never sees."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from infinitetalk.cli.errors import fail
from infinitetalk.config import Settings
from infinitetalk.errors import InvalidRequest


def load_settings(**flags: Any) -> Settings:
    """Settings from the environment, with every flag that was given (not None) on top."""
    try:
        return Settings(**{name: value for name, value in flags.items() if value is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        fail(InvalidRequest(f"setting {name} (INFINITETALK_{name.upper()} or its flag): "
                            f"{first['msg'].removeprefix('Value error, ')}", field=name))
    except SettingsError as exc:  # a variable pydantic-settings could not even parse
        fail(InvalidRequest(f"{exc}; see `infinitetalk serve --help` and the README for the format"))


def default_of(name: str) -> str:
    """A setting's built-in default."""
    return str(Settings.model_fields[name].get_default(call_default_factory=True))


def shown_default(text: str) -> str:
    """` [default: TEXT]` for a help string; the bracket escaped, or rich's markup swallows it as a tag."""
    return rf" \[default: {text}]"


def where(settings: Settings, *, store_only: bool = False) -> str:
    """The data folder and database in use (a password in the URL hidden).

    ``store_only``: a command that reads only the store (keys, workers) names the data folder only where the
    store lives in it (SQLite); beside PostgreSQL the folder is not what it used.
    """
    from sqlalchemy.engine import make_url

    from infinitetalk.tasks.db import database_url

    url = make_url(database_url(settings))
    shown = url.render_as_string(hide_password=True)
    if store_only and url.get_backend_name() != "sqlite":
        return f"database {shown}"
    return f"data folder {settings.data_dir.resolve()}, database {shown}"
