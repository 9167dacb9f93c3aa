"""A video's frame rate and frames, for the measures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from infinitetalk.media import video as media_video


def video_fps(path: str | Path) -> float:
    # media's reader: a file that is not a video is a worded video_unreadable, not FFmpeg's error
    return media_video.video_fps(path)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames in order."""
    for _, frame in media_video.iter_frames(path):
        yield frame
