"""Video-to-video: the source's own mouth motion, taken out before the new speech goes in.

A source whose person already talks has a mouth that moves with the old speech; the rig's
opening warped on top of it would stack both (the mouth followed the new speech no better
than the old). So each frame's lips are first closed to the source's neutral mouth, and
the rigs are built on that closed face:

- lips: the mesh's inner lips, moved out over teeth right above the upper one and dark
  cavity right below the lower one (on an open mouth the mesh often puts them there).
- neutral: per pair of inner-lip points (upper and lower, corner to corner), the least
  open the source has been so far, in eye distances. The engine lets it see a second of
  the source before the first frame is drawn; talking lips meet within that, so it is a
  shut mouth, while a smile that shows its teeth throughout stays a smile.
- closing: a column-wise warp along the mouth's vertical, the mirror of the rig's opening.
  What opened beyond the neutral mouth is squeezed out (a smile's teeth under the upper
  lip stay); the upper lip comes down a fifth of the way (fading out towards the nose),
  the lower lip the rest, and a little below it the jaw rises as one piece, fading out
  towards the cheeks and below the chin.

- rest lips: a patch of the frame whose lips were most closed so far. Squeezed shut out of an
  open frame, the lips are that frame's (stretched, shadowed, the old opening's dark edge on
  the lower lip) and the rig would open them as lip; the rest lips are put over them instead
  (``FaceAnimator``), so a dub opens closed lips as image-to-video opens a photo's.

The rig composes the closing with its opening on the same table (``MouthRig.forward_tables``)
when there are no rest lips to put in; with them, the crop is closed first (one more remap of
the mouth's region) and the rig opens that. A still source's mouth is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import numpy as np

from infinitetalk.engines.preview import landmarks as lm
from infinitetalk.engines.preview.geometry import Frame2D, smoothstep

UPPER_SHARE = 0.2  # of the excess gap, closed by the upper lip coming down (the rest: lower lip and jaw)
_JITTER_E = 0.02  # eye distances of opening that are left alone: the jitter of mesh and pixel runs
_MAX_EXCESS_E = 0.5  # a gap wider than this (eye distances) is a mesh error, not a mouth
_UPPER = np.array(lm.INNER_UPPER)
_LOWER = np.array(lm.INNER_LOWER)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_ACROSS = np.arange(-1, 2, dtype=np.float32)  # samples across a profile, pixels
_OUTER = np.array([*lm.OUTER_UPPER, *lm.OUTER_LOWER[1:-1][::-1]])  # the lips' outline, all the way round
REST_GROW_E = 0.3  # eye distances the rest lips reach past their outline (then feathered over as much again)
_REST_MARGIN_E = 2.5 * REST_GROW_E  # eye distances of skin kept around the lips in the rest snapshot


@dataclass(frozen=True)
class RestLips:
    """The source's lips when they were most closed: a patch of that frame and their outline in it."""

    patch: np.ndarray  # RGB uint8
    outline: np.ndarray  # (n, 2) the outer lip contour in the patch's pixels
    points: np.ndarray  # (478, 2) that frame's landmarks in the patch's pixels
    e: float  # that frame's eye distance, pixels

    @cached_property
    def layer(self) -> np.ndarray:
        """The patch as RGBA: alpha covers the lips and ``REST_GROW_E`` around them, feathered.

        The skin right under the lower lip goes with it: its crease is the lip's lower edge, which
        the squeezed frame's stretched skin lacks.
        """
        mask = np.zeros(self.patch.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(self.outline * 4).astype(np.int32)], 255, cv2.LINE_AA, shift=2)
        grow = max(1, round(REST_GROW_E * self.e))
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), max(0.7, 0.6 * grow))
        return np.dstack([self.patch, np.round(alpha * 255).astype(np.uint8)])


@dataclass(frozen=True)
class Closing:
    """This frame's mouth, and how far each pair of inner-lip points must come together (pixels)."""

    upper: np.ndarray  # inner upper lip, corner to corner (raised over teeth the mesh put it on)
    lower: np.ndarray  # inner lower lip, corner to corner
    corners: np.ndarray  # the mouth corners (2, 2)
    chin: np.ndarray
    e: float  # eye distance, pixels
    excess: np.ndarray  # per inner-lip pair: how far its points come together
    keep: np.ndarray  # per inner-lip pair: what lies right under the upper lip and goes with it (a smile's teeth)
    neutral: float  # the neutral mouth's gap in the middle, eye distances
    outline: np.ndarray | None = None  # this frame's outer lip contour once closed (pixels)
    rest: RestLips | None = None  # the most closed lips seen so far, to put where this frame's were squeezed shut

    @property
    def amount(self) -> float:
        return float(self.excess.max())

    def moved(self, offset: np.ndarray) -> Closing:
        """The same closing in pixels shifted by ``offset`` (e.g. a crop's)."""
        o = np.asarray(offset, np.float32)
        return replace(self, upper=self.upper + o, lower=self.lower + o, corners=self.corners + o, chin=self.chin + o,
                       outline=None if self.outline is None else self.outline + o)

    def displacement(self, frame: Frame2D, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Forward move along ``frame.ax_v`` (pixels) of the skin at (u, v) in ``frame``'s coordinates."""
        e = self.e
        up_u, up_v = frame.points_uv(self.upper)
        lo_u, lo_v = frame.points_uv(self.lower)
        pair_u = (up_u + lo_u) / 2
        o_up, o_lo, o_pair = np.argsort(up_u), np.argsort(lo_u), np.argsort(pair_u)
        up = np.interp(u, up_u[o_up], up_v[o_up])
        lo = np.interp(u, lo_u[o_lo], lo_v[o_lo])
        x = np.interp(u, pair_u[o_pair], self.excess[o_pair], left=0.0, right=0.0)
        x_mid = float(np.interp(0.0, pair_u[o_pair], self.excess[o_pair]))
        keep = np.interp(u, pair_u[o_pair], self.keep[o_pair], left=0.0, right=0.0)
        _, chin = frame.points_uv(self.chin[None, :])
        a = UPPER_SHARE
        # Above the lips: the upper lip comes down, the skin above it less and less.
        above = a * x * (1 - smoothstep(0.1 * e, 0.4 * e, up - v))
        # Between them: what the upper lip keeps goes with it, the rest is squeezed by the excess.
        gap = np.maximum(lo - up - keep, 1e-3)
        inside = a * x - np.clip((v - up - keep) / gap, 0, 1) * x
        # Below: the lower lip rises by its pair's excess, a little lower the jaw rises as one.
        jaw = x_mid * (1 - smoothstep(1.1, 2.4, np.abs(u)))
        t = smoothstep(0.0, 0.3 * e + 2 * (1 - a) * x_mid, v - lo)
        below = -(1 - a) * (x * (1 - t) + jaw * t) * (1 - smoothstep(float(chin[0]), float(chin[0]) + 0.4 * e, v))
        return np.where(v < up, above, np.where(v <= lo, inside, below)).astype(np.float32)

    def close(self, points: np.ndarray) -> np.ndarray:
        """``points`` (in this closing's pixels) with the mouth closed."""
        if self.amount <= 0:
            return points
        frame = _frame(self.corners)
        u, v = frame.points_uv(points)
        d = self.displacement(frame, u, v)
        return (points + d[:, None] * frame.ax_v).astype(np.float32)


class NeutralMouth:
    """One speaker's neutral mouth through a video: the least open it has been so far.

    "So far" over the mean of the last three frames: the least open single frame would mostly
    be the mesh's jitter at its lowest, and a still mouth would then seem to open a little.
    """

    def __init__(self) -> None:
        self._gap: np.ndarray | None = None  # per inner-lip pair, eye distances
        self._recent: list[np.ndarray] = []
        self._rest: RestLips | None = None
        self._rest_gap = np.inf  # the middle gap (eye distances) of the frame ``_rest`` was taken from

    def observe(self, image: np.ndarray, points: np.ndarray) -> None:
        """Update the neutral mouth with a frame's, without closing it (a look ahead)."""
        self._seen(image, points)

    def closing(self, image: np.ndarray, points: np.ndarray) -> Closing:
        """This frame's closing (and the neutral mouth updated with it); ``points`` in ``image``'s pixels."""
        e, corners, upper, lower, gap = self._seen(image, points)
        neutral = self._gap
        opened = np.clip(gap - neutral, 0.0, _MAX_EXCESS_E)
        # What lies between the inner lips of the neutral mouth: a smile's teeth (kept: they
        # stay under the upper lip, the opening is below them), or, on a shut mouth, lip (the
        # mesh's points sit a little inside it). The latter is no longer there once the source
        # opens (teeth and cavity are): squeezed to the neutral gap they would show as a seam,
        # so that gap goes once the source is clearly open. The rig paints teeth on the same
        # terms (MouthRig.source_gap).
        smile = float(smoothstep(0.03, 0.08, neutral[len(neutral) // 2]))
        keep = smile * neutral
        left = (1 - smile) * neutral * (1 - smoothstep(0.02, 0.08, opened))
        # A little is the jitter of the mesh (and of the pixel runs above) on a still mouth.
        excess = np.maximum((neutral + opened - keep - left - _JITTER_E) * e, 0.0)
        closing = Closing(upper, lower, corners, points[lm.CHIN].astype(np.float32), e, excess.astype(np.float32),
                          (keep * e).astype(np.float32), float(neutral[len(neutral) // 2]))
        if closing.amount <= 0 or self._rest is None:
            return closing
        outline = closing.close(points[_OUTER].astype(np.float32))
        return replace(closing, outline=outline, rest=self._rest)

    def _seen(self, image: np.ndarray, points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray,
                                                                    np.ndarray]:
        """Eye distance, mouth corners, lips as seen, and their gap (never under the neutral one)."""
        e = _eye_distance(points)
        corners = points[list(lm.MOUTH_CORNERS)].astype(np.float32)
        frame = _frame(corners)
        upper, lower = _lips_seen(image, points, frame, e)
        gap = np.maximum((lower - upper) @ frame.ax_v, 0.0) / e
        self._recent = [*self._recent[-2:], gap]
        recent = np.mean(self._recent, axis=0)
        self._gap = recent if self._gap is None else np.minimum(self._gap, recent)
        middle = float(gap[len(gap) // 2])
        if middle < self._rest_gap - 1e-3:
            self._rest, self._rest_gap = _snapshot(image, points, e), middle
        return e, corners, upper, lower, np.maximum(gap, self._gap)


def _snapshot(image: np.ndarray, points: np.ndarray, e: float) -> RestLips:
    outline = points[_OUTER].astype(np.float32)
    h, w = image.shape[:2]
    margin = _REST_MARGIN_E * e
    x0, y0 = np.maximum(np.floor(outline.min(axis=0) - margin).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0) + margin).astype(int) + 1, (w, h))
    origin = np.array([x0, y0], np.float32)
    return RestLips(image[y0:y1, x0:x1].copy(), outline - origin, points.astype(np.float32) - origin, e)


def _frame(corners: np.ndarray) -> Frame2D:
    left, right = corners
    return Frame2D((left + right) / 2, right - left, float(np.linalg.norm(right - left)) / 2)


def _eye_distance(points: np.ndarray) -> float:
    return float(np.linalg.norm(lm.eye_centre(points, "left") - lm.eye_centre(points, "right")))


def _lips_seen(image: np.ndarray, points: np.ndarray, frame: Frame2D, e: float) -> tuple[np.ndarray, np.ndarray]:
    """The inner lips where the picture has them: the mesh's, moved out over teeth and cavity.

    On an open mouth the mesh often puts the inner upper lip on the upper teeth and the inner
    lower lip inside the dark cavity. Teeth right above the middle upper point and cavity
    right below the middle lower point belong to the opening; the lips are moved out by
    them, most in the middle and not at all at the corners.
    """
    upper, lower = points[_UPPER].astype(np.float32), points[_LOWER].astype(np.float32)
    mid = len(_UPPER) // 2
    u, _ = frame.points_uv((upper + lower) / 2)
    inner_u = max(abs(float(u[0])), abs(float(u[-1])), 0.1)
    share = np.clip(1 - (u / inner_u) ** 2, 0, 1) ** 0.6
    skip = max(2, int(0.03 * e))
    out = points[lm.OUTER_UPPER[len(lm.OUTER_UPPER) // 2]]
    chin = (points[lm.OUTER_LOWER[len(lm.OUTER_LOWER) // 2]] + points[lm.CHIN]) / 2
    along, skin, below = _profiles(image, [
        (upper[mid], out),  # up through the upper lip
        (chin - 0.04 * e * frame.ax_u, chin + 0.04 * e * frame.ax_u),  # across the chin, under the lip
        (lower[mid], lower[mid] + 0.35 * e * frame.ax_v),  # down from the lower lip
    ])
    # Teeth: bright in every channel, where a red lip's darkest channel is dark.
    along = along.min(axis=1)
    if len(along) >= 5:
        lip = float(np.median(along[int(0.3 * len(along)) : int(0.8 * len(along)) + 1]))
        teeth = _run(along - (lip + max(35.0, 0.4 * lip)), 15.0, skip)
        upper = upper - (min(teeth, 0.5 * len(along), 0.1 * e) * share)[:, None] * frame.ax_v
    # Cavity: dark against the skin of the chin.
    skin_lum = float((skin @ _LUMA).mean()) if len(skin) else 0.0
    if len(below) >= 3 and skin_lum > 0:
        cavity = _run(0.45 * skin_lum - below @ _LUMA, 0.1 * skin_lum, skip)
        lower = lower + (min(cavity, 0.3 * e) * share)[:, None] * frame.ax_v
    return upper, lower


def _profiles(image: np.ndarray, segments: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """RGB along each start -> end (n, 3): a sample a pixel, each the mean of three pixels across."""
    h, w = image.shape[:2]
    lengths, parts = [], []
    for start, end in segments:
        length = float(np.hypot(*(end - start)))
        n = int(length)
        lengths.append(n + 1 if n >= 1 else 0)
        if n < 1:
            continue
        d = (end - start) / length
        xy = start + np.arange(n + 1, dtype=np.float32)[:, None] * d
        parts.append(xy[:, None, :] + _ACROSS[None, :, None] * np.array([-d[1], d[0]], np.float32))
    if not parts:
        return [np.zeros((0, 3), np.float32) for _ in segments]
    samples = np.concatenate(parts)
    xs = np.clip(np.rint(samples[..., 0]).astype(np.intp), 0, w - 1)
    ys = np.clip(np.rint(samples[..., 1]).astype(np.intp), 0, h - 1)
    rgb = image[ys, xs].mean(axis=1, dtype=np.float32)
    return np.split(rgb, np.cumsum(lengths)[:-1])


def _run(margin: np.ndarray, soft: float, skip: int) -> float:
    """Pixels from the start to the end of the first run over a threshold (``margin`` > 0).

    The run may start up to ``skip`` pixels in (the mesh's point can sit on the teeth's edge,
    above the cavity), and gets up to one pixel more for its blurred edge. Soft: pixels within
    ``soft`` of the threshold count in part, so a still mouth whose pixels hover at the
    threshold does not flicker between whole-pixel runs.
    """
    weight = np.clip(0.5 + margin / (2 * soft), 0.0, 1.0)
    starts = np.flatnonzero(weight[: skip + 1] >= 0.5)
    if not len(starts):
        return 0.0
    start = int(starts[0])
    n = start + float(np.minimum.accumulate(weight[start:]).sum())
    return n + min(n, 1.0)
