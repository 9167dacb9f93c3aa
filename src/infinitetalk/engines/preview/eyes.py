"""The eye rig: a blink moves the upper lid down to meet the lower lid, stretching the lid skin.

u runs along the corner line from the eye corner on the image's left to the one on its
right (-1..1 around the eye's middle), v across it in pixels, + towards the chin, for both
eyes. (With u from the outer to the inner corner, the left eye's v pointed up, its lids
swapped places and it never closed: every blink was a wink.) Between the lids the eyeball
is squeezed to nothing; above the upper lid the skin stretches, fading out before the
brow; the lower lid rises a little.
"""

from __future__ import annotations

import numpy as np

from infinitetalk.engines.preview.column_warp import ColumnWarp
from infinitetalk.engines.preview.geometry import Frame2D, smoothstep

# (outer corner, inner corner, upper lid corner to corner, lower lid corner to corner)
_EYES = {
    "right": (33, 133, (33, 246, 161, 160, 159, 158, 157, 173, 133), (33, 7, 163, 144, 145, 153, 154, 155, 133)),
    "left": (263, 362, (263, 466, 388, 387, 386, 385, 384, 398, 362), (263, 249, 390, 373, 374, 380, 381, 382, 362)),
}
_LOWER_RISE = 0.3  # share of the gap the lower lid rises (the upper lid travels the rest)
#: How far past the mesh's lid lines the eye is closed, as shares of the lid gap. The mesh puts
#: its lid points on an average eye's shape: on some faces the iris top and its catchlights show
#: above its upper lid line, or the white below its lower one (often on one eye of the pair), and
#: closing only what lay between the lines left that eye open in every blink: a wink.
_UPPER_MARGIN, _LOWER_MARGIN = 0.1, 0.3
#: Skin above the upper lid that stretches as it comes down, in (widened) lid gaps. A shorter
#: stretch (0.6-1.0 were tried) drew a spectacle frame right above the eye down into a dark arc
#: that reads as an open eye, to the face mesh as to a person.
_SKIN = 1.6


class EyeRig:
    def __init__(self, points: np.ndarray, side: str, crop_size: tuple[int, int]) -> None:
        outer, inner, upper, lower = _EYES[side]
        a, b = points[outer], points[inner]
        if b[0] < a[0]:  # u from the image's left: v (u turned +90 degrees) then points down the face
            a, b = b, a
        half = float(np.linalg.norm(b - a)) / 2
        frame = Frame2D((a + b) / 2, b - a, half)
        uu, uv = frame.points_uv(points[list(upper)])
        lu, lv = frame.points_uv(points[list(lower)])
        o = np.argsort(uu)
        uu, uv = uu[o], uv[o]
        o = np.argsort(lu)
        lu, lv = lu[o], lv[o]
        self.u_grid = np.linspace(-1.5, 1.5, 41).astype(np.float32)
        upper = np.interp(self.u_grid, uu, uv, left=0, right=0)
        lower = np.interp(self.u_grid, lu, lv, left=0, right=0)
        gap = np.maximum(lower - upper, 0)
        self.upper = upper - _UPPER_MARGIN * gap
        self.lower = lower + _LOWER_MARGIN * gap
        gap = np.maximum(self.lower - self.upper, 0)
        gmax = float(max(gap.max(), 0.1 * half))
        # The eye's own line is the corner line (v = 0); lids are drawn relative to it.
        v_grid = np.linspace(-3.2 * gmax, 2.2 * gmax, 120).astype(np.float32)
        corners = frame.to_xy(np.array([-1.5, 1.5, -1.5, 1.5]), np.array([v_grid[0]] * 2 + [v_grid[-1]] * 2))
        w, h = crop_size
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 3
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 3
        roi = (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))
        self.warp = ColumnWarp(frame, np.array([-1.0, 1.0]), np.array([0.0, 0.0]), self.u_grid, v_grid, roi)
        self._gmax = gmax
        self._gap = gap

    def forward_tables(self, closed: float) -> tuple[np.ndarray, np.ndarray]:
        """Forward tables for a lid ``closed`` in [0, 1] (1: shut)."""
        u, v = self.warp.table_uv()
        up = np.interp(u[0], self.u_grid, self.upper)[None, :]
        lo = np.interp(u[0], self.u_grid, self.lower)[None, :]
        gap = np.maximum(lo - up, 0)
        meet = lo - _LOWER_RISE * gap
        up_new = up + closed * (meet - up)
        lo_new = lo - closed * _LOWER_RISE * gap
        skin = _SKIN * self._gmax  # lid skin above the lid that stretches
        above = (up_new - up) * (1 - smoothstep(0, skin, up - v))
        inside = up_new + (v - up) / np.maximum(gap, 1e-3) * (lo_new - up_new) - v
        below = (lo_new - lo) * (1 - smoothstep(0, 0.8 * self._gmax, v - lo))
        fv = np.where(v < up, above, np.where(v <= lo, inside, below))
        return np.zeros_like(fv, dtype=np.float32), fv.astype(np.float32)
