"""The MP4 writer: streams, faststart, atomic output."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from infinitetalk.media.video import Mp4Writer, iter_frames


def frames(n: int, h: int = 64, w: int = 96):
    for i in range(n):
        frame = np.full((h, w, 3), 40, np.uint8)
        frame[:, (i * 3) % w] = 250
        yield frame


def test_writes_h264_aac_faststart(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    audio = (0.2 * np.sin(np.arange(44_100 * 2) / 20)).astype(np.float32)
    with Mp4Writer(out, width=96, height=64, fps=25, audio=audio) as writer:
        for frame in frames(50):
            writer.write(frame)
    with av.open(str(out)) as container:
        video, sound = container.streams.video[0], container.streams.audio[0]
        assert video.codec_context.name == "h264" and video.codec_context.pix_fmt == "yuv420p"
        assert (video.codec_context.width, video.codec_context.height) == (96, 64)
        assert float(video.average_rate) == 25
        assert sound.codec_context.name == "aac"
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "moov atom must come first (faststart)"
    assert sum(1 for _ in iter_frames(out)) == 50
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError), Mp4Writer(out, width=96, height=64, fps=25) as writer:
        for i, frame in enumerate(frames(10)):
            writer.write(frame)
            if i == 5:
                raise RuntimeError("engine broke")
    assert list(tmp_path.iterdir()) == []


def test_refuses_odd_sizes_and_wrong_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        Mp4Writer(tmp_path / "x.mp4", width=95, height=64, fps=25)
    with pytest.raises(ValueError, match="expected uint8"), Mp4Writer(tmp_path / "y.mp4", width=96, height=64,
                                                                      fps=25) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []
