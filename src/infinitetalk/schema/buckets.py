"""Output sizes: the official InfiniteTalk bucket tables, the sizes its weights were trained on.

The official pipeline (``generate_infinitetalk`` in ``wan/multitalk.py`` of MeiGen-AI/InfiniteTalk) picks its
output size from a fixed table per resolution, keyed by the aspect ratio height/width written with two
decimals: the key nearest to the source's height/width wins (the first in table order on a tie), and the
source is resized to cover that size and centre-cropped. Every engine uses them, so one request makes one size
whichever engine renders it. All sides are multiples of 64, so of 16 (VAE stride 8 x patch 2) and even for
H.264's 4:2:0 chroma.
"""

from __future__ import annotations

from infinitetalk.schema.request import Resolution

#: ``ASPECT_RATIO_627`` of ``wan/utils/multitalk_utils.py`` ("infinitetalk-480", around 640x640):
#: height/width -> (height, width).
ASPECT_RATIO_627: dict[str, tuple[int, int]] = {
    "0.26": (320, 1216), "0.38": (384, 1024), "0.50": (448, 896), "0.67": (512, 768),
    "0.82": (576, 704), "1.00": (640, 640), "1.22": (704, 576), "1.50": (768, 512),
    "1.86": (832, 448), "2.00": (896, 448), "2.50": (960, 384), "2.83": (1088, 384),
    "3.60": (1152, 320), "3.80": (1216, 320), "4.00": (1280, 320),
}  # fmt: skip

#: ``ASPECT_RATIO_960`` of ``wan/utils/multitalk_utils.py`` ("infinitetalk-720", around 960x960).
ASPECT_RATIO_960: dict[str, tuple[int, int]] = {
    "0.22": (448, 2048), "0.29": (512, 1792), "0.36": (576, 1600), "0.45": (640, 1408),
    "0.55": (704, 1280), "0.63": (768, 1216), "0.76": (832, 1088), "0.88": (896, 1024),
    "1.00": (960, 960), "1.14": (1024, 896), "1.31": (1088, 832), "1.50": (1152, 768),
    "1.58": (1216, 768), "1.82": (1280, 704), "1.91": (1344, 704), "2.20": (1408, 640),
    "2.30": (1472, 640), "2.67": (1536, 576), "2.89": (1664, 576), "3.62": (1856, 512),
    "3.75": (1920, 512),
}  # fmt: skip

#: 576p has no official table. One of the same kind between the two, ours: around 768x768, sides
#: multiples of 64, ratios 1/4 to 4. Heights 384..768 in steps of 64, each with the width
#: round(768^2 / height / 64) * 64, and every size turned on its side as well.
ASPECT_RATIO_768: dict[str, tuple[int, int]] = {
    "0.25": (384, 1536), "0.33": (448, 1344), "0.44": (512, 1152), "0.56": (576, 1024),
    "0.71": (640, 896), "0.85": (704, 832), "1.00": (768, 768), "1.18": (832, 704),
    "1.40": (896, 640), "1.78": (1024, 576), "2.25": (1152, 512), "3.00": (1344, 448),
    "4.00": (1536, 384),
}  # fmt: skip

TABLES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": ASPECT_RATIO_627,
    "576p": ASPECT_RATIO_768,
    "720p": ASPECT_RATIO_960,
}


def output_size(width: int, height: int, resolution: Resolution | str) -> tuple[int, int]:
    """The (width, height) the official pipeline makes for a ``width`` x ``height`` source."""
    table = TABLES[Resolution(resolution).value]
    ratio = height / width
    key = min(table, key=lambda k: abs(float(k) - ratio))  # min keeps the first of equals, as sorted()[0] does
    h, w = table[key]
    return w, h


def buckets(resolution: Resolution | str) -> tuple[tuple[int, int], ...]:
    """All (width, height) sizes of a resolution, wide to tall."""
    return tuple(sorted(((w, h) for h, w in TABLES[Resolution(resolution).value].values()),
                        key=lambda wh: -wh[0] / wh[1]))
