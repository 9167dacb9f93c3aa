"""What the two stores would treat differently is refused the same way on both: PostgreSQL enforces the
VARCHAR lengths of the columns (a longer value fails the INSERT), SQLite keeps any length."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from api_servers import FileServer, Server, ledger, make_key, store_env

from infinitetalk.errors import InvalidRequest


def test_an_idempotency_key_longer_than_the_column_is_a_400(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "long-idempotency", balance=1.0)
    body = {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url("short.wav")}

    def submit(idempotency_key: str) -> httpx.Response:
        return httpx.post(f"{keyed_server.url}/v1/tasks", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {key['key']}", "Idempotency-Key": idempotency_key})

    refused = submit("k" * 256)
    assert refused.status_code == 400, refused.text  # on PostgreSQL this was a 503 "store busy, try again"
    error = refused.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", "Idempotency-Key")
    assert "255" in error["message"]
    assert ledger(keyed_server.data_dir, key["id"]) == (1.0, [("top_up", 1.0, None)])  # nothing charged

    longest = "k" * 255
    first = submit(longest)
    assert first.status_code == 202, first.text
    again = submit(longest)  # the same task again, not a second one (202 while it runs, 200 once it ended)
    assert again.status_code in (200, 202) and again.json()["id"] == first.json()["id"]
    assert [kind for kind, _, _ in ledger(keyed_server.data_dir, key["id"])[1]] == ["top_up", "reserve"]


def test_a_key_name_longer_than_the_column_is_refused(keyed_server: Server) -> None:
    with pytest.raises(InvalidRequest, match="name: at most 200 characters"):
        make_key(keyed_server.data_dir, "n" * 201)
    assert make_key(keyed_server.data_dir, "n" * 200)["id"]
    # the CLI says it in its one error line, not with a traceback from the database driver
    result = subprocess.run(
        [sys.executable, "-m", "infinitetalk.cli", "keys", "create", "n" * 201,
         "--data-dir", str(keyed_server.data_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **store_env(keyed_server.data_dir)})
    assert result.returncode != 0
    assert "invalid_request" in result.stderr and "at most 200 characters" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
