"""Output sizes: pick the bucket whose aspect ratio is closest to the source's.

Each resolution is a family of sizes of about the same area (the model was trained on
buckets like these): 480p around 640x640, 576p around 768x768, 720p around 960x960.
Both sides are multiples of 16 (VAE stride 8 x patch 2), which also makes them even for
H.264's 4:2:0 chroma.
"""

from __future__ import annotations

import math
from functools import cache

from infinitetalk.schema.request import Resolution

_SIDE = {Resolution.P480: 640, Resolution.P576: 768, Resolution.P720: 960}
_STEP = 16
_MAX_ASPECT = 4.0


@cache
def buckets(resolution: Resolution) -> tuple[tuple[int, int], ...]:
    """All (width, height) sizes of a family, wide to tall."""
    side = _SIDE[Resolution(resolution)]
    area = side * side
    sizes = set()
    for height in range(_STEP * 8, int(side * 2) + 1, _STEP):
        width = round(area / height / _STEP) * _STEP
        if 1 / _MAX_ASPECT <= width / height <= _MAX_ASPECT:
            sizes.add((width, height))
    return tuple(sorted(sizes, key=lambda wh: -wh[0] / wh[1]))


def output_size(width: int, height: int, resolution: Resolution) -> tuple[int, int]:
    """The (width, height) of the bucket closest in aspect ratio to a width x height source."""
    target = math.log(width / height)
    return min(buckets(resolution), key=lambda wh: abs(math.log(wh[0] / wh[1]) - target))
