"""Pricing, and a balance that never goes below zero under concurrent reserves."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from infinitetalk.config import Settings
from infinitetalk.errors import InsufficientBalance
from infinitetalk.schema import AudioLayout
from infinitetalk.tasks import billing
from infinitetalk.tasks.db import at_head, open_database
from infinitetalk.tasks.keys import authenticate, create_key, revoke_key
from infinitetalk.tasks.models import MICROS, ApiKey, LedgerEntry


@pytest.mark.parametrize(
    ("seconds", "resolution", "billed", "price"),
    [(0.4, "480p", 5, 0.15), (5.0, "480p", 5, 0.15), (5.0001, "576p", 5, 0.225), (5.2, "720p", 6, 0.36),
     (61.0, "480p", 61, 1.83)],
)
def test_quote(seconds: float, resolution: str, billed: int, price: float) -> None:
    quote = billing.quote(audio_seconds=seconds, resolution=resolution, settings=Settings())
    assert quote.billed_seconds == billed
    assert quote.price == pytest.approx(price)


def test_rates_are_configurable() -> None:
    settings = Settings(rates={"480p": 0.5, "576p": 1, "720p": 2}, min_billed_seconds=1)
    assert billing.quote(audio_seconds=1.2, resolution="720p", settings=settings).price == pytest.approx(4.0)


def test_timeline_length_by_layout() -> None:
    assert billing.total_audio_seconds([3.0, 4.0], AudioLayout.PARA) == 4.0
    assert billing.total_audio_seconds([3.0, 4.0], AudioLayout.ADD) == 7.0


def test_concurrent_reserves_never_overdraw(tmp_path: Path) -> None:
    db, sessions = open_database(Settings(data_dir=tmp_path))
    assert at_head(db)
    with sessions.begin() as session:
        key_id = create_key(session, name="race", balance=1.0).record.id
    price = 150_000  # $0.15: six fit in $1.00
    outcomes: list[bool] = []
    lock = threading.Lock()

    def submit(index: int) -> None:
        try:
            with sessions.begin() as session:
                billing.reserve(session, key_id=key_id, amount_micros=price, task_id=f"t{index}")
            ok = True
        except InsufficientBalance:
            ok = False
        with lock:
            outcomes.append(ok)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sessions() as session:
        balance = session.get(ApiKey, key_id).balance_micros
        total = session.scalar(select(func.sum(LedgerEntry.amount_micros)).where(LedgerEntry.api_key_id == key_id))
    db.dispose()
    assert outcomes.count(True) == 6
    assert balance == 1 * MICROS - 6 * price == total
    assert balance >= 0


def test_keys_are_stored_hashed_and_revocable(tmp_path: Path) -> None:
    db, sessions = open_database(Settings(data_dir=tmp_path))
    with sessions.begin() as session:
        made = create_key(session, name="k")
    with sessions.begin() as session:
        assert authenticate(session, key=made.key).id == made.record.id
        stored = session.get(ApiKey, made.record.id)
        assert made.key not in (stored.key_hash, stored.prefix)
        revoke_key(session, key_id=made.record.id)
    with sessions() as session, pytest.raises(Exception, match="not valid"):
        authenticate(session, key=made.key)
    db.dispose()
