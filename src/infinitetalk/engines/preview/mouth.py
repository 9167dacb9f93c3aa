"""The mouth rig: jaw drop, lip parting, rounding and spreading, as forward displacement tables.

Coordinates: u runs along the line through the mouth corners (corners at u = -1, +1), v
across it in pixels, measured from the lips' meeting line (+ is towards the chin). Opening
raises the upper lip a little and drops the lower lip, chin and lower face a lot (the
lower face stretches; below the chin the motion fades out over the neck). Rounding pulls
the corners in, spreading pulls them out and up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infinitetalk.engines.preview import landmarks as lm
from infinitetalk.engines.preview.column_warp import ColumnWarp
from infinitetalk.engines.preview.geometry import Frame2D, smoothstep
from infinitetalk.engines.preview.neutral import Closing

# Amplitudes, in eye distances (E) or mouth half-widths (W).
UPPER_RAISE_E = 0.055
LOWER_DROP_E = 0.23
CORNER_PULL_W = 0.13
CORNER_LIFT_E = 0.035
OPEN_NARROW_W = 0.06


@dataclass
class MouthPose:
    open: float  # [0, 1]
    shape: float  # [-1 round, +1 spread]


class MouthRig:
    def __init__(self, points: np.ndarray, crop_size: tuple[int, int]) -> None:
        """``points``: 478 landmarks in crop pixels; ``crop_size``: (w, h) of the crop."""
        e = float(np.linalg.norm(lm.eye_centre(points, "left") - lm.eye_centre(points, "right")))
        left, right = points[lm.MOUTH_CORNERS[0]], points[lm.MOUTH_CORNERS[1]]
        half_w = float(np.linalg.norm(right - left)) / 2
        self.e, self.half_w = e, half_w
        self.frame = Frame2D((left + right) / 2, right - left, half_w)

        # The parting line runs along the top of the lower lip: whatever shows between the lips
        # in the photo (teeth of a smile) belongs to the upper jaw and rises with the upper lip.
        lo_u, lo_v = self.frame.points_uv(points[list(lm.INNER_LOWER)])
        order = np.argsort(lo_u)
        line_u, line_v = lo_u[order], lo_v[order] - 0.5
        self.source_gap = float(np.linalg.norm(points[14] - points[13]))
        self.inner_u = float(max(abs(line_u[0]), abs(line_u[-1]), 0.5))
        _, chin_v = self.frame.points_uv(points[[lm.CHIN]])
        _, top_v = self.frame.points_uv(points[[0]])  # upper lip's outer edge
        self.chin_v = float(chin_v[0] - np.interp(0, line_u, line_v))
        self.upper_thick = float(max(np.interp(0, line_u, line_v) - top_v[0], 0.05 * e))

        v_lo = -0.75 * e
        v_hi = max(1.6 * e, self.chin_v + 0.6 * e)
        # Put v = 0 between two table rows so the lip-parting jump is sharp.
        dv = (v_hi - v_lo) / 160
        v_grid = np.arange(v_lo, v_hi, dv) + dv / 2 - (v_lo % dv)
        u_grid = np.linspace(-3.0, 3.0, 49)
        corners = self.frame.to_xy(np.array([-3, 3, -3, 3]), np.array([v_grid[0], v_grid[0], v_grid[-1], v_grid[-1]]))
        w, h = crop_size
        margin = 4
        x0, y0 = np.floor(corners.min(axis=0)).astype(int) - margin
        x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
        roi = (max(0, int(x0)), max(0, int(y0)), min(w, int(x1)), min(h, int(y1)))
        self.warp = ColumnWarp(self.frame, line_u, line_v, u_grid, v_grid, roi)
        self._inner_lower = points[list(lm.INNER_LOWER)]
        self._build_bases()

    def _profile(self, u: np.ndarray) -> np.ndarray:
        """How far the lips part along the mouth: most in the middle, nothing at the corners."""
        x = np.clip(1 - (u / self.inner_u) ** 2, 0, 1)
        return x**0.6

    def _build_bases(self) -> None:
        u, v = self.warp.table_uv()
        e = self.e
        prof = self._profile(u)
        # Upper lip: rises as a whole, fading out towards the nose.
        up = -UPPER_RAISE_E * e * prof * (1 - smoothstep(0.6 * self.upper_thick, self.upper_thick + 0.25 * e, -v))
        # Lower face: at the lip line the drop follows the parting profile; a little lower it
        # becomes the jaw's rigid drop, which spans the chin and fades out towards the cheeks.
        jaw = 0.9 * (1 - smoothstep(1.1, 2.4, np.abs(u)))
        t = smoothstep(0.0, 0.22 * e, v)
        below_chin = 1 - smoothstep(self.chin_v, self.chin_v + 0.5 * e, v)
        down = LOWER_DROP_E * e * (prof * (1 - t) + jaw * t) * below_chin
        self.open_v = np.where(v < 0, up, down).astype(np.float32)
        # Corners: along u, strongest at the corners, fading across the lips' height.
        au = np.abs(u)
        g = np.where(au <= 1, u, np.sign(u) * np.exp(-(((au - 1) / 0.8) ** 2)))
        h = np.exp(-((v / (0.32 * e)) ** 2))
        self.corner_u = (self.half_w * g * h).astype(np.float32)
        self.lift_v = (-CORNER_LIFT_E * e * np.minimum(au, 1.0) ** 2 * h
                       * np.where(au <= 1, 1.0, np.exp(-(((au - 1) / 0.8) ** 2)))).astype(np.float32)

    def forward_tables(self, pose: MouthPose, closing: Closing | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forward tables for ``pose``; with ``closing`` (crop pixels), the frame's own mouth is shut first.

        The rig is built on the closed face, so the two compose on the table: skin at v closes
        to w = v + close(v), then opens to w + open(w).
        """
        fu = (CORNER_PULL_W * pose.shape - OPEN_NARROW_W * pose.open) * self.corner_u
        fv = pose.open * self.open_v + max(pose.shape, 0.0) * self.lift_v
        if closing is not None and closing.amount > 0:
            fu, fv = self._after(closing, fu, fv)
        return fu.astype(np.float32), fv.astype(np.float32)

    def _after(self, closing: Closing, fu: np.ndarray, fv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = self.warp.table_uv()
        rows = self.warp.v_grid
        d = closing.displacement(self.frame, u, v + self.warp.line(self.warp.u_grid)[None, :])
        d *= 1 - smoothstep(rows[-1] - 0.1 * self.e, rows[-1], v)  # nothing moves at the table's edge
        w = v + d
        # The opening tables sampled at w, column by column (rows are evenly spaced).
        at = np.clip((w - rows[0]) / (rows[1] - rows[0]), 0, len(rows) - 1)
        i0 = np.minimum(at.astype(np.int64), len(rows) - 2)
        frac = at - i0
        cols = np.arange(len(self.warp.u_grid))[None, :]

        def sample(table: np.ndarray) -> np.ndarray:
            return table[i0, cols] * (1 - frac) + table[i0 + 1, cols] * frac

        return sample(fu), d + sample(fv)

    def inner_lips(self, pose: MouthPose) -> tuple[np.ndarray, np.ndarray]:
        """The gap to paint (top, bottom; corner to corner) where this pose moves it, crop pixels.

        The top is the parting line on the upper jaw's side, the bottom the lower lip's inner
        edge: at rest the gap is empty, so teeth already showing in the photo stay visible.
        """
        out = []
        on_line = self._inner_lower - 0.5 * self.frame.ax_v
        for pts, side in ((on_line, -1e-3), (self._inner_lower, 1e-3)):
            u, v = self.frame.points_uv(pts)
            vv = np.full_like(u, side)  # on the line, on this lip's side of the jump
            du = self._sample(self._fu_fn(pose), u, vv)
            dv = self._sample(self._fv_fn(pose, side), u, vv)
            out.append(pts + du[:, None] * self.frame.ax_u + dv[:, None] * self.frame.ax_v)
        return out[0].astype(np.float32), out[1].astype(np.float32)

    def _fu_fn(self, pose: MouthPose):
        return (CORNER_PULL_W * pose.shape - OPEN_NARROW_W * pose.open) * self.corner_u

    def _fv_fn(self, pose: MouthPose, side: float):
        base = self.open_v
        # The row just above / below v = 0, so upper points take the upper lip's motion.
        rows = self.warp.v_grid
        j = int(np.searchsorted(rows, 0.0)) - (1 if side < 0 else 0)
        row = base[j : j + 1] * pose.open + max(pose.shape, 0.0) * self.lift_v[j : j + 1]
        return np.repeat(row, 1, axis=0)

    def _sample(self, table: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        if table.shape[0] == 1:
            return np.interp(u, self.warp.u_grid, table[0]).astype(np.float32)
        j = np.clip(np.searchsorted(self.warp.v_grid, v), 0, len(self.warp.v_grid) - 1)
        return np.array([np.interp(ui, self.warp.u_grid, table[ji]) for ui, ji in zip(u, j)], dtype=np.float32)
