"""A warp that moves skin along one direction, column by column, and is inverted exactly.

Mouths open and eyes blink by moving skin up and down across a line (the lips' meeting
line, the lid line), with a jump where the lips part. A backward map scaled linearly
with the amount of opening gets such jumps wrong: a half-open mouth would not open at
all. So each frame builds the *forward* displacement on a small table (u along the line,
v across it), inverts it per column with a 1-D interpolation (the forward map is
monotone along v), and samples the inverse at the output pixels. The table is ~50x160,
so this costs a fraction of a millisecond.
"""

from __future__ import annotations

import cv2
import numpy as np

from infinitetalk.engines.preview.geometry import Frame2D


class ColumnWarp:
    """Backward displacement for a region, in the coordinates of ``frame`` around a curved line."""

    def __init__(
        self,
        frame: Frame2D,
        line_u: np.ndarray,
        line_v: np.ndarray,
        u_grid: np.ndarray,
        v_grid: np.ndarray,
        roi: tuple[int, int, int, int],
    ) -> None:
        self.frame = frame
        self.u_grid = u_grid.astype(np.float32)
        self.v_grid = v_grid.astype(np.float32)  # pixels across the line, + is "down"
        self._line_u, self._line_v = line_u, line_v
        self.roi = roi  # x0, y0, x1, y1 in the coordinates the caller samples in
        x0, y0, x1, y1 = roi
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        u, v = frame.to_uv(xs, ys)
        vv = v - self.line(u)
        # Table coordinates of every ROI pixel, as a 2-channel image to remap through.
        du = self.u_grid[1] - self.u_grid[0]
        dv = self.v_grid[1] - self.v_grid[0]
        self._coords = np.dstack([(u - self.u_grid[0]) / du, (vv - self.v_grid[0]) / dv]).astype(np.float32)

    def line(self, u: np.ndarray) -> np.ndarray:
        return np.interp(u, self._line_u, self._line_v).astype(np.float32)

    def table_uv(self) -> tuple[np.ndarray, np.ndarray]:
        """Grids (nv, nu) of u and v (v relative to the line) to build forward tables on."""
        return np.meshgrid(self.u_grid, self.v_grid)

    def backward(self, fwd_u: np.ndarray, fwd_v: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """Backward (dx, dy) over the ROI for forward tables (nv, nu) in pixels along u and v.

        ``at``: optional (h, w, 2) positions (ROI-relative pixel coordinates + ROI origin) where
        the output pixels look before this warp (another warp applied on top, e.g. head motion).
        """
        v = self.v_grid
        back_v = np.empty_like(fwd_v)
        for j in range(fwd_v.shape[1]):
            out_pos = v + fwd_v[:, j]
            # Inverse of a monotone map: where does each output position come from?
            back_v[:, j] = np.interp(v, np.maximum.accumulate(out_pos), v) - v
        # Along the line the motion is small and smooth: minus the forward value is close enough.
        table = np.dstack([-fwd_u, back_v]).astype(np.float32)
        coords = self._coords
        if at is not None:
            x0, y0 = self.roi[:2]
            coords = cv2.remap(self._coords, at[..., 0] - x0, at[..., 1] - y0, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        b = cv2.remap(table, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ax_u, ax_v = self.frame.ax_u, self.frame.ax_v
        bu, bv = b[..., 0], b[..., 1]
        return np.dstack([bu * ax_u[0] + bv * ax_v[0], bu * ax_u[1] + bv * ax_v[1]])
