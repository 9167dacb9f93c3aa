"""Output sizes from the official bucket tables (wan/utils/multitalk_utils.py), chosen as wan/multitalk.py does."""

from __future__ import annotations

import pytest

from infinitetalk.schema.buckets import ASPECT_RATIO_627, ASPECT_RATIO_768, ASPECT_RATIO_960
from infinitetalk.schema.buckets import output_size as bucket_size


@pytest.mark.parametrize(
    ("source", "resolution", "expected"),
    [
        # (width, height) -> height/width, the nearest key, the table's [height, width]
        ((1280, 720), "480p", (896, 448)),  # 0.5625: 0.50 (0.0625 away) beats 0.67 (0.1075)
        ((1920, 1080), "480p", (896, 448)),
        ((720, 1280), "480p", (448, 832)),  # 1.778: 1.86 (0.082) beats 1.50 (0.278)
        ((1000, 1000), "480p", (640, 640)),
        ((640, 480), "480p", (704, 576)),  # 0.75: 0.82 (0.07) beats 0.67 (0.08)
        ((480, 640), "480p", (576, 704)),  # 1.333: 1.22 (0.113) beats 1.50 (0.167)
        ((512, 1024), "480p", (448, 896)),  # 2.00 exactly
        ((1200, 300), "480p", (1216, 320)),  # 0.25: 0.26
        ((300, 1500), "480p", (320, 1280)),  # 5.0: past the end, 4.00
        ((1280, 720), "720p", (1280, 704)),  # 0.5625: 0.55
        ((720, 1280), "720p", (704, 1280)),  # 1.778: 1.82 (0.042) beats 1.58 (0.198)
        ((640, 480), "720p", (1088, 832)),  # 0.75: 0.76
        ((1000, 1000), "720p", (960, 960)),
        ((1280, 720), "576p", (1024, 576)),  # ours: 0.5625 -> 0.56
        ((1000, 1000), "576p", (768, 768)),
    ],
)
def test_bucket_by_hand(source: tuple[int, int], resolution: str, expected: tuple[int, int]) -> None:
    assert bucket_size(*source, resolution) == expected


def test_tables() -> None:
    for table in (ASPECT_RATIO_627, ASPECT_RATIO_960, ASPECT_RATIO_768):
        for key, (h, w) in table.items():
            assert h % 64 == 0 and w % 64 == 0  # multiples of 16 (VAE 8 x patch 2), and of 64 here
            assert abs(float(key) - h / w) < 0.02  # keys are the ratios, rounded
    # 576p (no official table) sits between the two official families
    area = {name: sum(h * w for h, w in t.values()) / len(t) for name, t in
            (("480", ASPECT_RATIO_627), ("576", ASPECT_RATIO_768), ("720", ASPECT_RATIO_960))}
    assert area["480"] < area["576"] < area["720"]
