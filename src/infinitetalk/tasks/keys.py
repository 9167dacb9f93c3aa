"""API keys: made here, stored as sha256 hashes (keys are 256 random bits, so a fast hash is enough)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from infinitetalk.errors import InvalidRequest, NotFound, Unauthorized
from infinitetalk.tasks import billing
from infinitetalk.tasks.db import SessionFactory
from infinitetalk.tasks.models import MICROS, ApiKey, utcnow

KEY_PREFIX = "itk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True)
class CreatedKey:
    record: ApiKey
    #: The key itself; only this once.
    key: str


def create_key(
    session: Session,
    *,
    name: str,
    balance: float = 0.0,
    creates_per_minute: int | None = None,
    max_concurrent: int | None = None,
    allowed_models: list[str] | None = None,
) -> CreatedKey:
    longest = ApiKey.__table__.c.name.type.length
    if len(name) > longest:
        # PostgreSQL refuses a longer value at the INSERT (SQLite would keep it): say so up front, on both
        raise InvalidRequest(f"name: at most {longest} characters", field="name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        id="key_" + secrets.token_hex(8),
        name=name,
        key_hash=hash_key(key),
        prefix=key[:10],
        balance_micros=0,
        creates_per_minute=creates_per_minute,
        max_concurrent=max_concurrent,
        allowed_models=allowed_models or None,
        webhook_secret=new_webhook_secret(),
    )
    session.add(record)
    session.flush()
    if balance:
        billing.top_up(session, key_id=record.id, amount_micros=round(balance * MICROS))
        session.refresh(record)
    return CreatedKey(record=record, key=key)


def get_key(session: Session, *, key_id: str) -> ApiKey:
    record = session.get(ApiKey, key_id)
    if record is None:
        raise NotFound(f"no API key {key_id}; `infinitetalk keys list` shows them")
    return record


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def revoke_key(session: Session, *, key_id: str) -> ApiKey:
    record = get_key(session, key_id=key_id)
    record.revoked_at = record.revoked_at or utcnow()
    return record


def authenticate(session: Session, *, key: str) -> ApiKey:
    record = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    if record is None or record.revoked_at is not None:
        raise Unauthorized("the API key is not valid (unknown or revoked)")
    return record


def any_active(session: Session) -> bool:
    """Whether any key can be used; with none the server runs open (loopback only)."""
    return session.scalars(select(ApiKey.id).where(ApiKey.revoked_at.is_(None)).limit(1)).first() is not None


class KeyCache:
    """Keys recently authenticated, for ``ttl_s``: a status poll should not cost a database read for its key.
    Only successes are kept (a new key works at once); a revoked key keeps working for at most ``ttl_s``."""

    MAX_ENTRIES = 10_000

    def __init__(self, sessions: SessionFactory, *, ttl_s: float) -> None:
        self._sessions, self._ttl_s = sessions, ttl_s
        self._known: dict[str, tuple[ApiKey, float]] = {}
        #: key id -> until when it is known to be usable (for ``still_valid``)
        self._valid: dict[str, float] = {}

    def authenticate(self, key: str) -> ApiKey:
        digest = hash_key(key)
        hit = self._known.get(digest)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        with self._sessions() as session:
            record = authenticate(session, key=key)
        if self._ttl_s > 0:
            if len(self._known) >= self.MAX_ENTRIES:  # many keys, or someone cycling them: start over
                self._known.clear()
                self._valid.clear()
            self._known[digest] = (record, time.monotonic() + self._ttl_s)
            self._valid[record.id] = time.monotonic() + self._ttl_s
        return record

    def known_valid(self, key_id: str) -> bool:
        """Whether ``key_id`` was found usable less than ``ttl_s`` ago (no store read: cheap on the event loop)."""
        return self._valid.get(key_id, 0.0) > time.monotonic()

    def still_valid(self, key_id: str) -> bool:
        """Whether a key that authenticated earlier may still be used (not revoked, not deleted since): what
        the event streams and waits it holds open ask every ``ttl_s``. One store read per key per ``ttl_s``,
        however many of them it holds."""
        if self.known_valid(key_id):
            return True
        with self._sessions() as session:
            row = session.execute(select(ApiKey.revoked_at).where(ApiKey.id == key_id)).first()
        valid = row is not None and row.revoked_at is None
        if valid and self._ttl_s > 0:
            if len(self._valid) >= self.MAX_ENTRIES:
                self._valid.clear()
            self._valid[key_id] = time.monotonic() + self._ttl_s
        return valid
