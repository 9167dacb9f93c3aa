"""`infinitetalk keys`: API keys with balances and limits, straight in the task store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from sqlalchemy.orm import Session

from infinitetalk.cli.errors import fail
from infinitetalk.config import Settings
from infinitetalk.errors import InfiniteTalkError

keys_app = typer.Typer(help="Create, list, revoke and top up API keys.", no_args_is_help=True)

_DATABASE = typer.Option(None, "--database", help="SQLAlchemy URL [default: SQLite in the data dir].")
_DATA_DIR = typer.Option(None, "--data-dir", help="The server's data dir [default: ./infinitetalk-data].")


@contextmanager
def _session(database: str | None, data_dir: Path | None) -> Iterator[Session]:
    from infinitetalk.tasks.db import open_database

    flags = {"database_url": database, "data_dir": data_dir}
    db, sessions = open_database(Settings(**{k: v for k, v in flags.items() if v is not None}))
    try:
        with sessions.begin() as session:
            yield session
    except InfiniteTalkError as exc:  # one line with the code, like every other command
        fail(exc)
    finally:
        db.dispose()


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
    for row in rows:
        state = "revoked" if row["revoked"] else "active"
        typer.echo(f"{row['id']}  {row['prefix']}...  {state:7}  ${row['balance']:.2f}  {row['name']}")


@keys_app.command("revoke")
def revoke(key_id: str, database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """Revoke a key: it stops working at once."""
    from infinitetalk.tasks.keys import revoke_key

    with _session(database, data_dir) as session:
        revoke_key(session, key_id=key_id)
    typer.echo(f"revoked {key_id}")


@keys_app.command("top-up")
def top_up(key_id: str, amount: float = typer.Argument(..., help="USD to add."),
           database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """Add to a key's balance (a ledger entry)."""
    from infinitetalk.tasks import billing
    from infinitetalk.tasks.models import MICROS

    with _session(database, data_dir) as session:
        balance = billing.top_up(session, key_id=key_id, amount_micros=round(amount * MICROS))
    typer.echo(f"{key_id} balance ${balance / MICROS:.2f}")


@keys_app.command("secret")
def secret(key_id: str, database: str = _DATABASE, data_dir: Path = _DATA_DIR) -> None:
    """Print the Standard Webhooks secret that signs this key's webhooks."""
    from infinitetalk.tasks.keys import get_key

    with _session(database, data_dir) as session:
        typer.echo(get_key(session, key_id=key_id).webhook_secret)
