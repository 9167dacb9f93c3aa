"""The task store on PostgreSQL (a fleet's store), where it differs from SQLite's single writer."""

from __future__ import annotations

import subprocess
import sys

from services import PostgresServer

MIGRATE = """
import sys
from infinitetalk.config import Settings
from infinitetalk.tasks.db import at_head, open_database
engine, _ = open_database(Settings(database_url=sys.argv[1]))
assert at_head(engine)
engine.dispose()
"""


def test_processes_that_start_together_on_a_fresh_database_all_start(postgres: PostgresServer) -> None:
    # a fleet's API and worker processes start at once on one empty database: one migrates, the others wait
    # for it and find the schema at head (two creating the same tables at once killed one of them)
    for attempt in range(2):
        url = postgres.create_database(f"migrate_together_{attempt}")
        processes = [subprocess.Popen([sys.executable, "-c", MIGRATE, url], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [(process, *process.communicate(timeout=120)) for process in processes]
        failed = [stderr[-2000:] for process, _, stderr in results if process.returncode != 0]
        assert not failed, failed
