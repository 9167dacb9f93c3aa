"""Keys, billing and limits through the real server: 401/402/403/409/429, isolation, no charge for bad input."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import httpx
import pytest
from api_servers import FileServer, Server, cli, ledger, make_key, wait_until

from infinitetalk.client import ApiError
from infinitetalk.media.audio import probe_duration


def _request(file_server: FileServer, audio: str = "short.wav", **extra: object) -> dict:
    return {"image": file_server.url("grace_hopper.jpg"), "audio": file_server.url(audio), **extra}


def _error(call: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_no_key_or_bad_key_is_401(keyed_server: Server, file_server: FileServer) -> None:
    assert httpx.post(f"{keyed_server.url}/v1/tasks", json=_request(file_server)).status_code == 401
    for headers in ({"Authorization": "Bearer itk_nope"}, {"X-API-Key": "itk_nope"}, {"x-api-key": "itk_nope"}):
        response = httpx.get(f"{keyed_server.url}/v1/tasks", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


def test_key_headers_and_revoke(keyed_server: Server) -> None:
    key = make_key(keyed_server.data_dir, "headers")
    for headers in ({"Authorization": f"Bearer {key['key']}"}, {"X-API-Key": key["key"]}, {"x-api-key": key["key"]}):
        assert httpx.get(f"{keyed_server.url}/v1/tasks", headers=headers).status_code == 200
    cli("keys", "revoke", key["id"], data_dir=keyed_server.data_dir)
    # a key that authenticated is trusted for INFINITETALK_KEY_CACHE_S (1 s) without another database read
    wait_until(lambda: httpx.get(f"{keyed_server.url}/v1/tasks", headers={"X-API-Key": key["key"]}).status_code == 401,
               timeout=10, what="the revoked key to be refused")


def test_insufficient_balance_is_402_and_creates_nothing(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "poor", balance=0.10)  # 5 s minimum x $0.03 = $0.15
    client = keyed_server.client(key["key"])
    error = _error(lambda: client.submit(_request(file_server)))
    assert (error.status, error.code) == (402, "insufficient_balance")
    assert client.list()["data"] == []
    balance, rows = ledger(keyed_server.data_dir, key["id"])
    assert balance == pytest.approx(0.10)
    assert [kind for kind, _, _ in rows] == ["top_up"]
    assert "balance $1.10" in cli("keys", "top-up", key["id"], "1", data_dir=keyed_server.data_dir)
    assert client.submit(_request(file_server))["cost"]["charged"] is True


def test_model_not_allowed_is_403(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "v2v-only", models=("infinitetalk/video-to-video",))
    error = _error(lambda: keyed_server.client(key["key"]).submit(_request(file_server)))
    assert (error.status, error.code) == (403, "forbidden")


def test_rate_limit_is_429_with_retry_after(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "slow-hands", rate=2)
    client = keyed_server.client(key["key"])
    for _ in range(2):
        client.submit(_request(file_server))
    error = _error(lambda: client.submit(_request(file_server)))
    assert (error.status, error.code) == (429, "rate_limited")
    assert 1 <= error.retry_after <= 60


def test_concurrency_limit_is_429(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "one-at-a-time", max_concurrent=1)
    client = keyed_server.client(key["key"])
    first = client.submit(_request(file_server, "hello.wav"))
    error = _error(lambda: client.submit(_request(file_server)))
    assert (error.status, error.code, error.retry_after) == (429, "concurrency_limited", 5)
    client.cancel(first["id"])


def test_racing_submits_cannot_beat_the_rate_limit(keyed_server: Server, file_server: FileServer) -> None:
    """Eight submits at once against a limit of three: the final check runs under the key's lock."""
    from concurrent.futures import ThreadPoolExecutor

    key = make_key(keyed_server.data_dir, "racer", rate=3)
    client = keyed_server.client(key["key"])

    def attempt(_: int) -> int:
        try:
            client.submit(_request(file_server))
            return 202
        except ApiError as error:
            return error.status

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(attempt, range(8)))
    assert statuses == [202] * 3 + [429] * 5
    assert len(client.list()["data"]) == 3


def test_keys_cannot_see_each_others_tasks(keyed_server: Server, file_server: FileServer) -> None:
    alice = keyed_server.client(make_key(keyed_server.data_dir, "alice")["key"])
    bob = keyed_server.client(make_key(keyed_server.data_dir, "bob")["key"])
    task = alice.submit(_request(file_server))
    assert _error(lambda: bob.get(task["id"])).status == 404
    assert _error(lambda: bob.cancel(task["id"])).status == 404
    assert bob.list()["data"] == []
    assert [t["id"] for t in alice.list()["data"]] == [task["id"]]
    assert alice.get(task["id"])["status"] != "canceled"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"audio": None}, "audio"),
        ({"resolution": "4k"}, "resolution"),
        ({"fps": 99}, "fps"),
        ({"seed": "abc"}, "seed"),
        ({"extra": 1}, "extra"),
        ({"audio": "grace_hopper.jpg"}, "audio"),  # not audio at all
        ({"audio": "missing.wav"}, "audio"),  # 404 at the file server
        ({"image": "file:///etc/passwd"}, "image"),
        ({"image": "/etc/passwd"}, "image"),
        ({"callback_url": "http://10.0.0.1/hook"}, "callback_url"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_charges_nothing(
    keyed_server: Server, file_server: FileServer, change: dict, field: str
) -> None:
    key = make_key(keyed_server.data_dir, "careless", balance=1.0)
    body = _request(file_server)
    for name, value in change.items():
        if value is None:
            body.pop(name)
        elif name in ("audio",) and not value.startswith(("http", "/", "file")):
            body[name] = file_server.url(value)
        else:
            body[name] = value
    client = keyed_server.client(key["key"])
    error = _error(lambda: client.submit(body))
    assert error.status == 400, error
    assert error.field == field, error
    assert field in error.message
    assert client.list()["data"] == []
    assert ledger(keyed_server.data_dir, key["id"])[0] == pytest.approx(1.0)


def test_idempotency_key(keyed_server: Server, file_server: FileServer) -> None:
    key = make_key(keyed_server.data_dir, "retrying", balance=1.0)
    client = keyed_server.client(key["key"])
    first = client.submit(_request(file_server), idempotency_key="order-1")
    again = client.submit(_request(file_server), idempotency_key="order-1")
    assert again["id"] == first["id"]
    error = _error(lambda: client.submit(_request(file_server, seed=3), idempotency_key="order-1"))
    assert (error.status, error.code) == (409, "idempotency_conflict")
    assert len(client.list()["data"]) == 1
    reserves = [row for row in ledger(keyed_server.data_dir, key["id"])[1] if row[0] == "reserve"]
    assert len(reserves) == 1


def test_price_is_reserved_and_kept_on_success(keyed_server: Server, speech_wav: Path,
                                               grace_hopper_path: Path) -> None:
    key = make_key(keyed_server.data_dir, "payer", balance=1.0)
    client = keyed_server.client(key["key"])
    data_uri = "data:audio/wav;base64," + base64.b64encode(speech_wav.read_bytes()).decode()
    portrait = client.upload(grace_hopper_path)
    task = client.submit({"image": portrait["url"], "audio": data_uri, "resolution": "576p"})
    billed = max(5, math.ceil(probe_duration(speech_wav)))
    assert task["cost"]["billed_seconds"] == billed
    assert task["cost"]["price"] == pytest.approx(billed * 0.045)
    assert task["cost"]["charged"] is True
    done = client.wait(task["id"], timeout=120)
    assert done["status"] == "succeeded", done["error"]
    balance, rows = ledger(keyed_server.data_dir, key["id"])
    assert balance == pytest.approx(1.0 - billed * 0.045)
    assert [kind for kind, _, _ in rows] == ["top_up", "reserve"]
    assert wait_until(lambda: not (keyed_server.data_dir / "inputs" / task["id"]).exists(), what="inputs deleted")
