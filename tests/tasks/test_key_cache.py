"""The key cache: no database read per request for a known key, a revoked key refused once its entry ages out,
unknown keys never cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from infinitetalk.config import Settings
from infinitetalk.errors import Unauthorized
from infinitetalk.tasks.db import open_database
from infinitetalk.tasks.keys import KeyCache, create_key, revoke_key


def test_cache_serves_a_known_key_and_forgets_a_revoked_one(tmp_path: Path) -> None:
    db, sessions = open_database(Settings(data_dir=tmp_path))
    with sessions.begin() as session:
        made = create_key(session, name="cached")
    long_lived, no_cache = KeyCache(sessions, ttl_s=3600), KeyCache(sessions, ttl_s=0)
    assert long_lived.authenticate(made.key).id == made.record.id
    with sessions.begin() as session:
        revoke_key(session, key_id=made.record.id)
    assert long_lived.authenticate(made.key).id == made.record.id  # still within its hour: no store read
    with pytest.raises(Unauthorized):
        no_cache.authenticate(made.key)
    with pytest.raises(Unauthorized):
        long_lived.authenticate("itk_unknown")
    db.dispose()
