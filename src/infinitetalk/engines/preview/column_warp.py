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
        self._to_xy = np.stack([frame.ax_u, frame.ax_v], axis=1).astype(np.float32)  # (du, dv) -> (dx, dy)

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
        # Table positions pre-rotated into x, y: bilinear sampling is linear, so rotating the small
        # table gives what rotating every sampled pixel would, at a fraction of the cost.
        table = cv2.transform(np.dstack([-fwd_u, self._inverse_v(fwd_v)]).astype(np.float32), self._to_xy)
        coords = self._coords
        if at is not None:
            x0, y0 = self.roi[:2]
            coords = cv2.remap(self._coords, at[..., 0] - x0, at[..., 1] - y0, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        return cv2.remap(table, coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    def _inverse_v(self, fwd_v: np.ndarray) -> np.ndarray:
        """Per column, the backward move across the line that undoes ``fwd_v`` (nv, nu).

        Each column's forward map is monotone along v (made so by a running maximum), so its inverse
        is a 1-D interpolation; all columns go through one np.interp by laying them end to end, each
        shifted past the one before (a loop of one np.interp per column cost ~1 ms a frame).
        """
        v = self.v_grid.astype(np.float64)
        out_pos = np.maximum.accumulate(v[:, None] + fwd_v, axis=0).T  # (nu, nv), each row non-decreasing
        low, high = out_pos[:, :1], out_pos[:, -1:]
        stride = float(high.max() - low.min()) + float(v[-1] - v[0]) + 1.0
        shift = stride * np.arange(len(out_pos))[:, None]
        back = np.interp((v + shift).ravel(), (out_pos + shift).ravel(), np.tile(v, len(out_pos)))
        # Outside a column's range np.interp reached into its neighbours: the end values, as one column's would.
        back = np.where(v < low, v[0], np.where(v > high, v[-1], back.reshape(out_pos.shape)))
        return (back - v).T
