"""Every storage, for tests that hold for each: LocalStorage in a temp folder, S3Storage on SeaweedFS's S3 gateway
on loopback (a fresh prefix per test)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from services import S3Server

from infinitetalk.config import Settings
from infinitetalk.storage import Storage, open_storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Storage:
    if request.param == "local":
        return open_storage(Settings(data_dir=tmp_path))
    s3: S3Server = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3.region)
    return open_storage(Settings(data_dir=tmp_path, storage_url=f"s3://{s3.bucket}/{secrets.token_hex(6)}",
                                 s3_endpoint_url=s3.endpoint_url))
