"""Migrations when several processes open one fresh store at once (a fleet starting; serve beside `keys create`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from services import PostgresServer

pytestmark = pytest.mark.integration  # migrating processes as subprocesses

MIGRATE = """
import sys
from pathlib import Path
from infinitetalk.config import Settings
from infinitetalk.tasks.db import at_head, open_database
where = sys.argv[1]
settings = Settings(database_url=where) if "://" in where else Settings(data_dir=Path(where))
engine, _ = open_database(settings)
assert at_head(engine)
engine.dispose()
"""


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_processes_that_start_together_on_a_fresh_store_all_start(store: str, tmp_path: Path,
                                                                  request: pytest.FixtureRequest) -> None:
    # one migrates, the others wait for it and find the schema at head (before, each created the same tables
    # and all but one died: 'table api_keys already exists', or a duplicate key on PostgreSQL)
    for attempt in range(2):
        if store == "postgresql":
            postgres: PostgresServer = request.getfixturevalue("postgres")
            where = postgres.create_database(f"migrate_together_{attempt}")
        else:
            where = str(tmp_path / f"data{attempt}")
        processes = [subprocess.Popen([sys.executable, "-c", MIGRATE, where], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [(process, *process.communicate(timeout=120)) for process in processes]
        failed = [stderr[-2000:] for process, _, stderr in results if process.returncode != 0]
        assert not failed, failed
