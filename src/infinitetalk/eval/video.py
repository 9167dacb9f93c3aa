"""A video's frame rate and frames, for the measures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from infinitetalk.errors import InvalidRequest
from infinitetalk.media import video as media_video


def require_video(path: str | Path) -> None:
    """Refuse a still picture: FFmpeg reads one as a one-frame video without sound, and the measures would then
    blame its missing speech. Pillow knows pictures and no video container."""
    try:
        with Image.open(path) as picture:
            kind, frames = picture.format, getattr(picture, "n_frames", 1)
    except (UnidentifiedImageError, OSError):
        return  # not a picture: FFmpeg's reader says what else may be wrong
    if frames <= 1:
        raise InvalidRequest(f"video: this file is a picture ({kind}), not a video; give a talking video, "
                             "e.g. what `infinitetalk generate` wrote", code="video_unreadable", field="video")


def video_fps(path: str | Path) -> float:
    # media's reader: a file that is not a video is a worded video_unreadable, not FFmpeg's error
    return media_video.video_fps(path)


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames in order."""
    for _, frame in media_video.iter_frames(path):
        yield frame
