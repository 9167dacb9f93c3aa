"""The official pipeline's formulas written out plainly (MeiGen-AI/InfiniteTalk), as oracles for our code.

Each function restates one piece of the official code in the simplest form, independent of ours.
"""

from __future__ import annotations

import warnings

import numpy as np
from skimage import color


def official_windows(rows: int, frame_num: int = 81, motion: int = 9) -> list[list[list[int]]]:
    """The official streaming loop (generate_infinitetalk in wan/multitalk.py) on an embedding whose row i
    holds i: per chunk, the rows each frame's -2..+2 window reads. Clamp to the last row; once the
    next chunk reaches the end, append the reversed last ``end - rows + 3`` rows and stop after it."""
    emb = list(range(rows))
    start, end, last, out = 0, frame_num, False, []
    while True:
        out.append([[emb[min(max(t + o, 0), len(emb) - 1)] for o in range(-2, 3)] for t in range(start, end)])
        if last:
            return out
        start += frame_num - motion
        end = start + frame_num
        if end >= rows:
            last = True
            miss = end - rows + 3
            emb = emb + emb[-miss:][::-1]


def official_color(source01: np.ndarray, ref01: np.ndarray, strength: float) -> np.ndarray:
    """match_and_blend_colors (wan/utils/multitalk_utils.py) on [T, H, W, 3] / [H, W, 3] frames in [0, 1]."""
    ref_lab = color.rgb2lab(ref01)
    out = []
    for frame in source01:
        lab = color.rgb2lab(frame)
        corrected = lab.copy()
        for j in range(3):
            mean, std = lab[..., j].mean(), lab[..., j].std()
            r_mean, r_std = ref_lab[..., j].mean(), ref_lab[..., j].std()
            corrected[..., j] = r_mean if std == 0 else (corrected[..., j] - mean) * (r_std / std) + r_mean
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skimage warns when it clips a negative Z
            rgb = np.clip(color.lab2rgb(corrected), 0.0, 1.0)
        out.append((1 - strength) * frame + strength * rgb)
    return np.stack(out)
