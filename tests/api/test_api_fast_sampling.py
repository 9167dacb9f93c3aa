"""``"sampling": "fast"`` on the native API (what WaveSpeed's infinitetalk-fast routes send): accepted, rendered
as usual by the preview engine, and quoted and billed at the fast rate, by default half the resolution's."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
from api_servers import Server

from infinitetalk.media.audio import probe_duration

pytestmark = pytest.mark.sqlite_only  # pricing arithmetic; the store's part is test_api_billing_rules' business


def test_fast_sampling_is_estimated_and_billed_at_half_the_rate(preview_server: Server, short_speech_wav: Path,
                                                                grace_hopper_path: Path) -> None:
    client = preview_server.client()
    audio = client.upload(short_speech_wav)
    billed = max(5, math.ceil(probe_duration(short_speech_wav)))
    for sampling, rate in (("standard", 0.06), ("fast", 0.03)):
        estimate = client.estimate({"audio": audio["url"], "resolution": "720p", "sampling": sampling})
        assert estimate["billed_seconds"] == billed
        assert estimate["price"] == pytest.approx(billed * rate)
    image = client.upload(grace_hopper_path)
    task = client.submit({"image": image["url"], "audio": audio["url"], "resolution": "720p", "fps": 16,
                          "sampling": "fast"}, wait=120)
    assert task["status"] == "succeeded", task["error"]
    assert task["cost"]["price"] == pytest.approx(billed * 0.03)
    models = httpx.get(f"{preview_server.url}/v1/models").json()["data"]
    assert {r["resolution"]: r["usd_per_second_fast"] for r in models[0]["resolutions"]}["720p"] == 0.03
