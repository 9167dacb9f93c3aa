"""One settings object, read from INFINITETALK_* environment variables and CLI flags."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFINITETALK_", extra="ignore")

    #: Where tasks, uploads and outputs live.
    data_dir: Path = Path("./infinitetalk-data")
    #: Hosts (names or IP addresses/networks) that URL inputs may reach even when they are not
    #: public. Empty: only public addresses. For tests and trusted internal file servers.
    fetch_allow_hosts: list[str] = Field(default_factory=list)
    fetch_connect_timeout_s: float = 10.0
    fetch_read_timeout_s: float = 60.0
    #: "preview" (CPU, no weights), "neural" (needs weights_dir) or "auto" (neural when weights are set).
    engine: str = "auto"
    weights_dir: Path | None = None


@lru_cache
def get_settings() -> Settings:
    return Settings()
