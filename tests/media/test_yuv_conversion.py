"""The RGB to yuv420p conversion every video we write goes through (``media.video.yuv_frame``).

It is the BT.709 matrix into limited range that the streams are tagged with, sample by sample:
the tags test in test_media_video.py looks at flat colours only, where a wrong chroma position
or a plane's line padding cannot show.
"""

from __future__ import annotations

import av
import numpy as np
import pytest

from infinitetalk.media.video import yuv_frame


def bt709_limited(rgb: np.ndarray) -> np.ndarray:
    """Y'CbCr (float) of R'G'B' uint8 pixels by ITU-R BT.709-6's matrix, limited range."""
    red, green, blue = np.moveaxis(rgb.astype(np.float64) / 255, -1, 0)
    kr, kb = 0.2126, 0.0722
    luma = kr * red + (1 - kr - kb) * green + kb * blue
    return np.stack([16 + 219 * luma, 128 + 224 * (blue - luma) / (2 - 2 * kb),
                     128 + 224 * (red - luma) / (2 - 2 * kr)], axis=-1)


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Y, Cb, Cr as stored, without the padding at each line's end."""
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width].astype(float)
            for p in frame.planes]


def picture(height: int, width: int) -> np.ndarray:
    """Smooth gradients in every channel, with noise on top: every level, and neighbours that differ."""
    rng = np.random.default_rng(7)
    ys, xs = np.mgrid[0:height, 0:width]
    smooth = np.stack([255 * xs / (width - 1), 255 * ys / (height - 1), 127 + 127 * np.sin(xs / 9 + ys / 13)], -1)
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


# 98 wide: the chroma lines (49 samples) are padded in the frame's buffers; 576x704 is the benchmark's.
@pytest.mark.parametrize(("height", "width"), [(64, 98), (704, 576)])
def test_yuv_frame_is_bt709_limited_range_sample_by_sample(height: int, width: int) -> None:
    rgb = picture(height, width)
    frame = yuv_frame(rgb)
    assert (frame.format.name, frame.width, frame.height) == ("yuv420p", width, height)
    assert (frame.colorspace, frame.color_range) == (1, 1), "the frame says what the stream's tags say"
    luma, cb, cr = planes(frame)
    exact = bt709_limited(rgb)
    assert np.abs(luma - exact[..., 0]).max() <= 1
    # OpenCV's 8-bit matrix runs in fixed point: a few percent of samples round the other way.
    assert np.mean(luma != np.rint(exact[..., 0])) < 0.08, "off by one only where rounding is close"
    # Each chroma sample stands for its 2x2 block of pixels.
    block = exact[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    assert np.abs(cb - block[..., 0]).max() <= 1.5 and np.abs(cr - block[..., 1]).max() <= 1.5
    assert abs(np.mean(cb - block[..., 0])) < 0.1 and abs(np.mean(cr - block[..., 1])) < 0.1, "no drift"


def test_yuv_frame_takes_a_decoded_rgb_frame_too() -> None:
    rgb = picture(48, 64)
    from_frame = yuv_frame(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    for a, b in zip(planes(from_frame), planes(yuv_frame(rgb)), strict=True):
        np.testing.assert_array_equal(a, b)
