"""Cancel: a queued task never runs (refunded); a running one stops at its next frame (charged for the video made)."""

from __future__ import annotations

import pytest
from api_servers import FileServer, Server, ledger, long_task, make_key, wait_until



def test_cancel_running_stops_it(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "canceler", balance=5.0)
    client = keyed_server.client(key["key"])
    task = client.submit(long_task(file_server))
    wait_until(lambda: (t := client.get(task["id"]))["status"] == "running" and t["progress"]["fraction"] > 0.05,
               timeout=60, what="the task to be running")
    answer = client.cancel(task["id"])
    assert answer["status"] in ("running", "canceled")
    done = client.wait(task["id"], timeout=60)
    assert done["status"] == "canceled"
    assert done["progress"]["fraction"] < 1.0
    # it pays for the video made (the chunks finished, which it keeps; see test_api_billing_rules), the rest
    # comes back: all of it when no chunk was finished
    assert done["cost"] == {**done["cost"], "charged": True, "refunded": True}
    assert [kind for kind, _, _ in ledger(keyed_server.data_dir, key["id"])[1]] == ["top_up", "reserve", "refund"]
    error = pytest.raises(Exception, client.cancel, task["id"]).value
    assert getattr(error, "status", None) == 409


def test_cancel_queued_never_runs_and_is_refunded(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "queue-jumper", balance=5.0)
    client = keyed_server.client(key["key"])
    # the server has two workers: fill them, so the third task waits in the queue
    blockers = [client.submit(long_task(file_server)) for _ in range(2)]
    wait_until(lambda: all(client.get(t["id"])["status"] == "running" for t in blockers), timeout=60,
               what="both workers busy")
    queued = client.submit(long_task(file_server))
    answer = client.cancel(queued["id"])
    assert answer["status"] == "canceled"
    assert answer["timings"]["started_at"] is None
    assert answer["cost"]["refunded"] is True
    for blocker in blockers:
        client.cancel(blocker["id"])
    ended = [client.wait(blocker["id"], timeout=60) for blocker in blockers]
    assert [blocker["status"] for blocker in ended] == ["canceled", "canceled"]
    assert client.get(queued["id"])["timings"]["started_at"] is None  # still never ran
    balance, rows = ledger(keyed_server.data_dir, key["id"])
    refunds = {task_id: amount for kind, amount, task_id in rows if kind == "refund"}
    assert refunds[queued["id"]] == pytest.approx(queued["cost"]["price"])  # all of it
    # the blockers ran: each pays for the video it made (test_api_billing_rules)
    assert balance == pytest.approx(5.0 - sum(blocker["cost"]["total"] for blocker in ended))
