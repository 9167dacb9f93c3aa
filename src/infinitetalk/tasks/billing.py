"""Per-second pricing and the ledger.

billed seconds = ceil(audio seconds), at least ``min_billed_seconds``; price = billed x rate[resolution] (a fast
request's rate: ``fast_rates``, half of ``rates`` unless set).
The price is reserved at submit with one conditional UPDATE (``balance >= price``), so concurrent submits
can never take a balance below zero, and every movement of money is a ledger row in the same transaction.

When a task ends the bill follows the work (``refund_due``): a failure of ours, or one before the first chunk
was made, gives the whole price back; a task canceled while it runs, or failed through the caller's input after
its first chunk, pays for the video made (``charge_for_video``) and gets the rest back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from infinitetalk.config import Settings
from infinitetalk.errors import InsufficientBalance, InvalidRequest, NotFound
from infinitetalk.schema import AudioLayout
from infinitetalk.tasks.models import MICROS, ApiKey, LedgerEntry


@dataclass(frozen=True)
class Quote:
    audio_seconds: float
    billed_seconds: int
    rate_micros: int
    price_micros: int

    @property
    def price(self) -> float:
        return self.price_micros / MICROS


def total_audio_seconds(durations: list[float], layout: AudioLayout) -> float:
    """Length of the output timeline: tracks together (para) or one after another (add)."""
    return sum(durations) if layout is AudioLayout.ADD else max(durations)


def usd_per_second(resolution: str, settings: Settings, *, fast: bool = False) -> float:
    """The resolution's rate; ``fast`` (a 4-step render): ``fast_rates[resolution]``, default half the rate."""
    if resolution not in settings.rates:
        raise InvalidRequest(f"resolution: no price is configured for {resolution}", field="resolution")
    usd = settings.rates[resolution]
    return settings.fast_rates.get(resolution, usd / 2) if fast else usd


def quote(*, audio_seconds: float, resolution: str, settings: Settings, fast: bool = False) -> Quote:
    # round first so 6.0000001 s of float noise is not billed as 7 s
    billed = max(settings.min_billed_seconds, math.ceil(round(audio_seconds, 3)))
    rate = round(usd_per_second(resolution, settings, fast=fast) * MICROS)
    return Quote(audio_seconds=audio_seconds, billed_seconds=billed, rate_micros=rate, price_micros=billed * rate)


def charge_for_video(*, video_seconds: float, price_micros: int, billed_seconds: int, min_billed_seconds: int) -> int:
    """What a task that stopped part-way owes: the video it made, in whole seconds at the task's own rate, at least
    the minimum, never more than its price; nothing when it made none."""
    if video_seconds <= 0 or billed_seconds <= 0:
        return 0
    rate = price_micros // billed_seconds  # exact: the price was billed_seconds x the rate
    seconds = max(min_billed_seconds, math.ceil(round(video_seconds, 3)))
    return min(price_micros, seconds * rate)


def refund_due(*, price_micros: int, billed_seconds: int, video_seconds: float, min_billed_seconds: int,
               our_fault: bool) -> int:
    """What comes back to the key when a task stops before it finished: everything for a failure of ours,
    else the price of the video not made (everything when none was made)."""
    if our_fault:
        return price_micros
    return price_micros - charge_for_video(video_seconds=video_seconds, price_micros=price_micros,
                                           billed_seconds=billed_seconds, min_billed_seconds=min_billed_seconds)


def _move(session: Session, *, key_id: str, amount: int, kind: str, task_id: str | None, floor: bool) -> int:
    statement = update(ApiKey).where(ApiKey.id == key_id).values(balance_micros=ApiKey.balance_micros + amount)
    if floor:
        statement = statement.where(ApiKey.balance_micros + amount >= 0)
    balance = session.execute(statement.returning(ApiKey.balance_micros)).scalar_one_or_none()
    if balance is None:
        return -1
    session.add(
        LedgerEntry(api_key_id=key_id, task_id=task_id, kind=kind, amount_micros=amount, balance_after_micros=balance)
    )
    return balance


def reserve(session: Session, *, key_id: str, amount_micros: int, task_id: str) -> int:
    """Take ``amount_micros`` from the key's balance (in the caller's transaction) or raise 402."""
    balance = _move(session, key_id=key_id, amount=-amount_micros, kind="reserve", task_id=task_id, floor=True)
    if balance < 0:
        have = session.execute(select(ApiKey.balance_micros).where(ApiKey.id == key_id)).scalar_one()
        raise InsufficientBalance(
            f"this task costs ${amount_micros / MICROS:.2f} and the key's balance is ${have / MICROS:.2f}; "
            "top the key up or send shorter audio / a lower resolution"
        )
    return balance


def refund(session: Session, *, key_id: str, amount_micros: int, task_id: str) -> int:
    return _move(session, key_id=key_id, amount=amount_micros, kind="refund", task_id=task_id, floor=False)


def top_up(session: Session, *, key_id: str, amount_micros: int) -> int:
    balance = _move(session, key_id=key_id, amount=amount_micros, kind="top_up", task_id=None, floor=True)
    if balance < 0:
        raise NotFound(f"no API key {key_id} (or the balance would go below zero)")
    return balance
