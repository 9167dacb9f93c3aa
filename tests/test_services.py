"""The servers the tests start themselves (tests/services.py) answer as the real thing: Redis through the
`redis` client, PostgreSQL through our own migrations and key store, SeaweedFS through boto3 and a plain
HTTP GET of a presigned URL."""

from __future__ import annotations

import secrets

import httpx
import pytest
from services import PostgresServer, S3Server, postgres_bindir, postgres_server


def test_redis_answers_ping_set_get(redis_url: str) -> None:
    import redis

    assert redis_url.startswith("redis://127.0.0.1:")
    with redis.Redis.from_url(redis_url) as client:
        assert client.ping() is True
        value = secrets.token_hex(8)
        assert client.set("services:smoke", value, ex=60) is True
        assert client.get("services:smoke") == value.encode()


def test_postgres_runs_our_migrations_and_stores_a_key(postgres: PostgresServer) -> None:
    from sqlalchemy import select

    from infinitetalk.config import Settings
    from infinitetalk.tasks.db import at_head, open_database
    from infinitetalk.tasks.keys import authenticate, create_key
    from infinitetalk.tasks.models import MICROS, ApiKey, LedgerEntry

    url = postgres.create_database("services_smoke")  # its own database: postgres_url stays empty for others
    assert url.startswith("postgresql+psycopg://") and "127.0.0.1" in url
    engine, sessions = open_database(Settings(database_url=url))
    try:
        assert engine.dialect.name == "postgresql"
        assert at_head(engine)
        with sessions.begin() as session:
            made = create_key(session, name="smoke", balance=2.5)
        with sessions() as session:
            found = authenticate(session, key=made.key)
            assert found.id == made.record.id and found.name == "smoke"
            assert session.get(ApiKey, made.record.id).balance_micros == 2.5 * MICROS
            kinds = session.scalars(select(LedgerEntry.kind).where(LedgerEntry.api_key_id == found.id)).all()
            assert kinds == ["top_up"]
    finally:
        engine.dispose()
    # migrating again (a second process starting) is a no-op at head
    engine, _ = open_database(Settings(database_url=url))
    try:
        assert at_head(engine)
    finally:
        engine.dispose()


def test_postgres_is_found_off_path() -> None:
    # Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, which is not on PATH
    bindir = postgres_bindir()
    assert (bindir / "initdb").exists() and (bindir / "pg_ctl").exists()


@pytest.mark.integration  # starts PostgreSQL
def test_postgres_stops_and_leaves_nothing_behind() -> None:
    import psycopg

    with postgres_server() as server:
        folder = server.data.parent
        with psycopg.connect(host="127.0.0.1", port=server.port, user=server.user, dbname=server.database) as db:
            assert db.execute("SELECT 1").fetchone() == (1,)
    assert not folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host="127.0.0.1", port=server.port, user=server.user, dbname=server.database,
                        connect_timeout=2)


def test_s3_put_get_and_presigned_get(s3_endpoint: S3Server) -> None:
    client = s3_endpoint.client()
    body = secrets.token_bytes(300_000)  # bigger than one network read
    key = f"smoke/{secrets.token_hex(4)}/out.mp4"
    client.put_object(Bucket=s3_endpoint.bucket, Key=key, Body=body, ContentType="video/mp4")
    got = client.get_object(Bucket=s3_endpoint.bucket, Key=key)
    assert got["Body"].read() == body and got["ContentType"] == "video/mp4"

    url = client.generate_presigned_url("get_object", Params={"Bucket": s3_endpoint.bucket, "Key": key},
                                        ExpiresIn=300)
    assert url.startswith(s3_endpoint.endpoint_url) and "X-Amz-Signature=" in url
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200 and response.content == body
    assert response.headers["content-type"] == "video/mp4"

    # the signature is checked: unsigned, a changed key, or the wrong secret are all refused
    assert httpx.get(f"{s3_endpoint.endpoint_url}/{s3_endpoint.bucket}/{key}", timeout=30).status_code == 403
    assert httpx.get(url.replace("out.mp4", "other.mp4"), timeout=30).status_code == 403
    wrong = S3Server(s3_endpoint.endpoint_url, s3_endpoint.bucket, s3_endpoint.access_key, "0" * 40).client()
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        wrong.get_object(Bucket=s3_endpoint.bucket, Key=key)


def test_a_missing_server_program_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from services import ServiceMissing, redis_server

    monkeypatch.setenv("PATH", "/nonexistent")  # redis-server is looked up on PATH
    with pytest.raises(ServiceMissing, match=r"scripts/install\.sh.*apt-get install -y redis-server"):
        with redis_server():
            pass
