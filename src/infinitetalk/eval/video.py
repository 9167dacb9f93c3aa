"""A video's frame rate and frames, for the measures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from infinitetalk.media import video as media_video


def video_fps(path: str | Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.average_rate or stream.guessed_rate)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames in order."""
    for _, frame in media_video.iter_frames(path):
        yield frame
