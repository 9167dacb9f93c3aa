"""Small geometric helpers shared by the preview engine's rigs."""

from __future__ import annotations

import numpy as np


def smoothstep(edge0: float, edge1: float, x: np.ndarray | float) -> np.ndarray:
    """0 below edge0, 1 above edge1, a smooth S between (works for edge0 > edge1 too)."""
    t = np.clip((np.asarray(x, dtype=np.float32) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


class Frame2D:
    """A rotated frame: ``u`` along ``axis`` in units of ``scale``, ``v`` perpendicular (down) in pixels."""

    def __init__(self, origin: np.ndarray, axis: np.ndarray, scale: float) -> None:
        self.origin = np.asarray(origin, dtype=np.float32)
        self.ax_u = (np.asarray(axis, dtype=np.float32) / np.linalg.norm(axis)).astype(np.float32)
        self.ax_v = np.array([-self.ax_u[1], self.ax_u[0]], dtype=np.float32)  # +90 deg: image "down"
        self.scale = float(scale)

    def to_uv(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dx, dy = x - self.origin[0], y - self.origin[1]
        return (dx * self.ax_u[0] + dy * self.ax_u[1]) / self.scale, dx * self.ax_v[0] + dy * self.ax_v[1]

    def points_uv(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.to_uv(pts[:, 0], pts[:, 1])

    def to_xy(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        u = np.asarray(u) * self.scale
        return np.stack([self.origin[0] + u * self.ax_u[0] + v * self.ax_v[0],
                         self.origin[1] + u * self.ax_u[1] + v * self.ax_v[1]], axis=-1)
