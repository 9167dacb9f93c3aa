"""`infinitetalk keys`: API keys with balances and limits, straight in the task store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy.orm import Session

from infinitetalk.cli.errors import fail
from infinitetalk.cli.settings import default_of, load_settings, shown_default, where
from infinitetalk.errors import InfiniteTalkError, InvalidRequest

keys_app = typer.Typer(help="Create, list, revoke and top up API keys.", no_args_is_help=True)

_DATABASE = typer.Option(None, "--database", help="SQLAlchemy URL" + shown_default("SQLite in the data folder"))
_DATA_DIR = typer.Option(None, "--data-dir", help="The server's data folder" + shown_default(default_of("data_dir")))


@contextmanager
def _session(database: str | None, data_dir: Path | None) -> Iterator[Session]:
    from infinitetalk.tasks.db import open_database

    settings = load_settings(database_url=database, data_dir=data_dir)
    # Which store a command read or changed is never a guess (a second, empty database the server never
    # sees was the trap): said on stderr, so --json output stays parseable, and inside an error's one line.
    place = where(settings, store_only=True)
    db, sessions = open_database(settings)
    try:
        with sessions.begin() as session:
            yield session
    except InfiniteTalkError as exc:  # one line with the code, like every other command
        exc.message = f"{exc.message} ({place})"
        fail(exc)
    finally:
        db.dispose()
    typer.echo(place, err=True)


def _describe(record) -> dict:  # noqa: ANN001 - an ApiKey row
    from infinitetalk.tasks.models import MICROS

    return {
        "id": record.id, "name": record.name, "prefix": record.prefix, "balance": record.balance_micros / MICROS,
        "creates_per_minute": record.creates_per_minute, "max_concurrent": record.max_concurrent,
        "allowed_models": record.allowed_models, "revoked": record.revoked_at is not None,
    }


@keys_app.command("create")
def create(
    name: str = typer.Argument(..., help="Who or what the key is for."),
    balance: float = typer.Option(0.0, help="Starting balance in USD."),
    rate: int = typer.Option(None, "--rate", help="Task creates per minute (sliding window)."),
    max_concurrent: int = typer.Option(None, "--max-concurrent", help="Unfinished tasks at once."),
    model: list[str] = typer.Option(None, "--model", help="Allowed model (repeat); default all, e.g. "
                                                          "infinitetalk/image-to-video."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (with the key) for scripts."),
    database: str = _DATABASE, data_dir: Path = _DATA_DIR,
) -> None:
    """Create a key; the key is printed once and only its hash is kept."""
    from infinitetalk.tasks.keys import create_key

    with _session(database, data_dir) as session:
        made = create_key(session, name=name, balance=balance, creates_per_minute=rate,
                          max_concurrent=max_concurrent, allowed_models=model or None)
        info = {**_describe(made.record), "key": made.key, "webhook_secret": made.record.webhook_secret}
    if as_json:
        typer.echo(json.dumps(info))
    else:
        typer.echo(f"created {info['id']} ({name}), balance ${balance:.2f}\nkey (shown once): {made.key}")


@keys_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """List keys (never the keys themselves)."""
    from infinitetalk.tasks.keys import list_keys

    with _session(database, data_dir) as session:
        rows = [_describe(record) for record in list_keys(session)]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no keys yet: `infinitetalk keys create NAME --balance 10` makes one")
        return
    table = [("ID", "PREFIX", "STATE", "BALANCE", "NAME")] + [
        (row["id"], row["prefix"] + "...", "revoked" if row["revoked"] else "active", f"${row['balance']:.2f}",
         row["name"]) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(4)]
    for line in table:
        typer.echo("  ".join([*(cell.ljust(w) if i != 3 else cell.rjust(w)
                                for i, (cell, w) in enumerate(zip(line[:4], widths, strict=True))), line[4]]))


@keys_app.command("revoke")
def revoke(key_id: str, database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """Revoke a key: running servers refuse it within INFINITETALK_KEY_CACHE_S (1 s by default), its open event
    streams and waits included."""
    from infinitetalk.tasks.keys import revoke_key

    with _session(database, data_dir) as session:
        revoke_key(session, key_id=key_id)
    typer.echo(f"revoked {key_id}")


@keys_app.command("top-up")
def top_up(key_id: str, amount: float = typer.Argument(..., help="USD to add (more than 0)."),
           database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """Add to a key's balance (a ledger entry)."""
    from infinitetalk.tasks import billing
    from infinitetalk.tasks.models import MICROS

    if not amount > 0:  # a top-up that lowers a balance would be a charge under another name
        fail(InvalidRequest(f"top-up amount {amount:g}: give a positive number of USD (a key that should "
                            "spend no more can be revoked: `infinitetalk keys revoke ID`)", field="amount"))
    with _session(database, data_dir) as session:
        balance = billing.top_up(session, key_id=key_id, amount_micros=round(amount * MICROS))
    typer.echo(f"{key_id} balance ${balance / MICROS:.2f}")


@keys_app.command("secret")
def secret(key_id: str, database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """Print the Standard Webhooks secret that signs this key's webhooks."""
    from infinitetalk.tasks.keys import get_key

    with _session(database, data_dir) as session:
        typer.echo(get_key(session, key_id=key_id).webhook_secret)
