"""The inside of an open mouth: painted between the moved inner-lip contours.

Warping alone would smear the lips' meeting line across the gap. The lips keep their own
texture (they are warped, not painted); only the gap between them gets a dark red-brown
interior, darker towards the back, upper teeth under the upper lip once the mouth opens
wide enough, a faint lower teeth edge and a hint of tongue. The polygon's edge is feathered
so no seam shows where the painted interior meets the warped lips.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from infinitetalk.engines.preview.geometry import Frame2D, smoothstep


@dataclass(frozen=True)
class Palette:
    lip: np.ndarray  # float32 RGB
    teeth: np.ndarray


def palette_from(image: np.ndarray, outer: np.ndarray, inner: np.ndarray, skin_box: tuple[int, int, int, int]) -> Palette:
    """Colours taken from the portrait: the lips' own red, teeth as bright as the face's light."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(outer).astype(np.int32)], 255)
    cv2.fillPoly(mask, [np.round(inner).astype(np.int32)], 0)
    lip = image[mask > 0].reshape(-1, 3).mean(axis=0) if (mask > 0).sum() > 10 else np.array([150, 80, 80])
    x0, y0, x1, y1 = skin_box
    skin = image[y0:y1, x0:x1].reshape(-1, 3).astype(np.float32)
    lum = float((skin @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) if skin.size else 150.0
    bright = float(np.clip(lum / 165.0, 0.55, 1.05))
    return Palette(lip=lip.astype(np.float32), teeth=(np.array([240, 229, 208], np.float32) * bright))


def paint_interior(
    crop: np.ndarray,
    upper: np.ndarray,
    lower: np.ndarray,
    eye_px: float,
    palette: Palette,
    grain: np.ndarray,
    teeth: float = 1.0,
) -> None:
    """Paint the open mouth into ``crop`` (in place). ``upper``/``lower``: inner-lip contours, corner to corner."""
    mid = len(upper) // 2
    gap = float(np.linalg.norm(lower[mid] - upper[mid]))
    if gap < 0.8:
        return
    poly = np.concatenate([upper, lower[::-1]])
    h, w = crop.shape[:2]
    x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int) - 3, 0)
    x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int) + 4, (w, h))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return
    local = poly - (x0, y0)

    # 1. Coverage: an anti-aliased polygon, feathered a little.
    cover = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(cover, [np.round(local * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    alpha = cv2.GaussianBlur(cover, (0, 0), 0.6).astype(np.float32) / 255.0

    # 2. Coordinates across the mouth: u along the corners (-1..1), v down from the upper lip.
    frame = Frame2D((upper[0] + upper[-1]) / 2 - (x0, y0), upper[-1] - upper[0], np.linalg.norm(upper[-1] - upper[0]) / 2)
    xs, ys = np.meshgrid(np.arange(x1 - x0, dtype=np.float32), np.arange(y1 - y0, dtype=np.float32))
    u, v = frame.to_uv(xs, ys)
    uu, uv = frame.points_uv(local[: len(upper)])
    lu, lv = frame.points_uv(local[len(upper):][::-1])
    top = np.interp(u, uu, uv).astype(np.float32)
    bottom = np.interp(u, lu, lv).astype(np.float32)
    from_top = v - top
    local_gap = np.maximum(bottom - top, 1e-3)

    # 3. The cavity: lip-tinted near the lips, nearly black at the back.
    # (beyond the corners |u| > 1.4 the falloff would go negative: keep depth in [0, 1])
    depth = np.clip(np.minimum(from_top, bottom - v) / (0.5 * local_gap + 1.0), 0, 1) * np.clip(1 - 0.5 * u**2, 0, 1)
    # Half the lips' own colour, half a warm mouth red: pale or grey-lit lips still give a living cavity.
    edge_col = 0.5 * palette.lip * 0.45 + 0.5 * np.array([112, 42, 40], np.float32)
    deep_col = palette.lip * 0.08 + np.array([22, 6, 6], np.float32)
    colour = edge_col + (deep_col - edge_col) * (depth[..., None] ** 0.7)

    # 4. Tongue: a soft lighter mound low in the middle, once the mouth is open a bit.
    show_tongue = float(smoothstep(0.08 * eye_px, 0.2 * eye_px, gap))
    r = np.sqrt((u / 0.55) ** 2 + ((v - (bottom - 0.2 * local_gap)) / (0.38 * local_gap + 1)) ** 2)
    tongue_a = 0.55 * show_tongue * (1 - smoothstep(0.6, 1.0, r))
    colour += (palette.lip * 0.62 - colour) * tongue_a[..., None]

    # 5. Teeth: upper ones under the upper lip when the mouth opens wide, a faint lower edge.
    show_teeth = float(smoothstep(0.05 * eye_px, 0.15 * eye_px, gap)) * teeth  # 0: the photo's own teeth show
    if show_teeth > 0:
        tooth_h = min(0.08 * eye_px, 0.4 * gap)
        au = np.abs(u)
        side = 1 - smoothstep(0.2, 0.72, au)  # teeth recede into the dark towards the corners
        th = tooth_h * (0.55 + 0.45 * side)
        upper_a = show_teeth * side * (1 - smoothstep(th - 0.7, th + 0.7, from_top))
        half_w = frame.scale
        seams = sum(np.exp(-(((u * half_w - k * 0.105 * eye_px) / 0.55) ** 2)) for k in (-2, -1, 0, 1, 2))
        shade = (0.62 + 0.38 * side) * (1 - 0.12 * seams) * (0.72 + 0.28 * smoothstep(0.0, 2.0, from_top))
        colour += (palette.teeth * shade[..., None] - colour) * upper_a[..., None]
        lower_h = 0.3 * tooth_h
        lower_a = 0.18 * show_teeth * side * smoothstep(lower_h + 0.7, lower_h - 0.7, bottom - v)
        colour += (palette.teeth * 0.7 - colour) * lower_a[..., None]

    colour *= grain[y0:y1, x0:x1, None]
    roi = crop[y0:y1, x0:x1].astype(np.float32)
    a = alpha[..., None]
    crop[y0:y1, x0:x1] = np.clip(roi + (colour - roi) * a, 0, 255).astype(np.uint8)
