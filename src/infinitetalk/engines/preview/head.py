"""Head motion: a small rigid move of the head, blended into a still background.

The motion is weighted by a mask that is 1 over the head and fades to 0 well inside the
crop, so the picture's borders and most of the background never move and no seam shows.
The mask is smooth, so the backward map of a few-pixel move is minus the forward one,
computed on a coarse grid and resized up.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from infinitetalk.engines.preview.geometry import smoothstep

_COARSE = 4  # the head map is computed on a grid this many pixels apart


class HeadRig:
    def __init__(self, face_box: tuple[float, float, float, float], chin: np.ndarray, crop_size: tuple[int, int]) -> None:
        x0, y0, x1, y1 = face_box
        w, h = crop_size
        self.size = (w, h)
        fw, fh = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 0.08 * fh
        self.pivot = np.array([chin[0], chin[1] + 0.35 * fh], dtype=np.float32)  # the neck
        gw, gh = w // _COARSE + 2, h // _COARSE + 2
        xs, ys = np.meshgrid(np.arange(gw, dtype=np.float32) * _COARSE, np.arange(gh, dtype=np.float32) * _COARSE)
        r = np.sqrt(((xs - cx) / (0.62 * fw)) ** 2 + ((ys - cy) / (0.68 * fh)) ** 2)
        mask = 1 - smoothstep(1.0, 1.6, r)
        edge = np.minimum.reduce([xs, ys, (w - 1) - xs, (h - 1) - ys])
        mask *= smoothstep(2.0, 0.12 * max(fw, fh), edge)  # nothing moves at the crop's edges
        self._xs, self._ys, self._mask = xs, ys, mask.astype(np.float32)
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        self._grid = np.dstack([grid_x, grid_y])

    def backward_map(self, dx: float, dy: float, angle_deg: float) -> np.ndarray:
        """(h, w, 2) source positions for each crop pixel when the head moves by (dx, dy) and turns."""
        a = math.radians(angle_deg)
        c, s = math.cos(a), math.sin(a)
        px, py = self.pivot
        # Inverse of: p -> R (p - pivot) + pivot + t
        qx, qy = self._xs - px - dx, self._ys - py - dy
        sx = c * qx + s * qy + px - self._xs
        sy = -s * qx + c * qy + py - self._ys
        coarse = np.dstack([sx * self._mask, sy * self._mask])
        w, h = self.size
        fine = cv2.resize(coarse, ((coarse.shape[1]) * _COARSE, coarse.shape[0] * _COARSE), interpolation=cv2.INTER_LINEAR)
        return self._grid + fine[:h, :w]

    def moving_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1): the part of the crop that head motion can move; outside it the map is the identity."""
        rows, cols = np.nonzero(self._mask > 0)
        w, h = self.size
        if not len(rows):
            return (0, 0, 0, 0)
        # The fine map is the coarse one resized: a node reaches a little over one grid step around it.
        return (max(0, int(cols.min()) * _COARSE - _COARSE), max(0, int(rows.min()) * _COARSE - _COARSE),
                min(w, int(cols.max()) * _COARSE + 2 * _COARSE), min(h, int(rows.max()) * _COARSE + 2 * _COARSE))

    def identity_map(self) -> np.ndarray:
        """The backward map of no motion (a fresh copy: callers add to it)."""
        return self._grid.copy()

    def forward_points(self, pts: np.ndarray, dx: float, dy: float, angle_deg: float) -> np.ndarray:
        """Where the head move takes points (near the face, where the mask is 1)."""
        a = math.radians(angle_deg)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=np.float32)
        return ((pts - self.pivot) @ rot.T + self.pivot + (dx, dy)).astype(np.float32)
