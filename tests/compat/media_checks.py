"""Checks shared by the provider tests: a downloaded output is a real, playable talking video."""

from __future__ import annotations

from pathlib import Path

import av
import httpx


def assert_playable_video(url: str, tmp_path: Path, *, min_seconds: float = 1.5) -> Path:
    """Download ``url`` (no key: output URLs are signed) and check it is H.264 video with the speech muxed in.
    On S3 storage the URL redirects to a presigned one of the bucket, as browsers and SDKs follow."""
    response = httpx.get(url, timeout=60, follow_redirects=True)
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "video/mp4"
    path = tmp_path / "out.mp4"
    path.write_bytes(response.content)
    assert_mp4(path, min_seconds=min_seconds)
    return path


def assert_mp4(path: Path, *, min_seconds: float = 1.5) -> None:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert container.streams.audio, "the speech must be muxed in"
        frames = sum(1 for _ in container.decode(video=0))
        assert frames / video.average_rate >= min_seconds
