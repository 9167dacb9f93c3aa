"""One animated face: its crop, its rigs, and the per-frame warp that puts them together.

Only a crop around the head is ever warped; the rest of the picture is copied as is. Per
frame: head motion gives a smooth backward map over the crop; the mouth (and, while
blinking, the eyes) add their exact column-wise inverses on top, sampled where the head
motion looks; one cv2.remap warps the crop; the mouth interior is painted into the gap.
In video-to-video the rigs are built on the face with its mouth closed to the source's
neutral one (``neutral.py``), and each frame's mouth table closes the source's own
opening before it opens the mouth for the new speech; where the source's mouth was open,
its squeezed lips are replaced by its most closed ones first (``_closed_on_rest_lips``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from infinitetalk.engines.preview import landmarks as lm
from infinitetalk.engines.preview.eyes import EyeRig
from infinitetalk.engines.preview.geometry import smoothstep
from infinitetalk.engines.preview.head import HeadRig
from infinitetalk.engines.preview.interior import paint_interior, palette_from
from infinitetalk.engines.preview.landmarks import Face
from infinitetalk.engines.preview.mouth import MouthPose, MouthRig
from infinitetalk.engines.preview.neutral import REST_GROW_E, Closing

_CROP_MARGIN = 0.7  # of the face's size, around its landmarks
#: Mean landmark change (after the shift is taken out), in eye distances, that still reuses the rigs.
_FOLLOW_TOLERANCE = 0.03
_NEUTRAL_TOLERANCE = 0.015  # eye distances the neutral mouth may close by and still reuse the rigs
_REST_FADE_E = 0.04  # eye distances of closing over which the rest lips fade in
_LIPS = np.array([*lm.OUTER_UPPER, *lm.OUTER_LOWER, *lm.INNER_UPPER, *lm.INNER_LOWER])


def _rest_placement(closing: Closing, origin: np.ndarray | tuple[int, int] = (0, 0)) -> np.ndarray:
    """The 2x3 similarity taking the rest lips' patch to this frame's closed lips (pixels less ``origin``)."""
    assert closing.rest is not None and closing.outline is not None
    return _lips_placement(closing.rest.outline, closing.outline - np.asarray(origin, np.float32))


def _with_rest_lips(points: np.ndarray, closing: Closing | None, origin: tuple[int, int]) -> np.ndarray:
    """``points`` (crop pixels) with the lips of the rest frame where a dub puts them (``_closed_on_rest_lips``).

    The rig parts the lips along their meeting line: the rest lips' own, not the one the mesh
    guessed on this frame's open mouth and the closing squeezed shut.
    """
    if closing is None or closing.rest is None or closing.outline is None:
        return points
    to_here = _rest_placement(closing, origin)
    out = points.copy()
    out[_LIPS] = closing.rest.points[_LIPS] @ to_here[:, :2].T + to_here[:, 2]
    return out


def _lips_placement(rest: np.ndarray, here: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, size, shift) taking lip outline ``rest`` onto ``here``.

    Turned and sized by the mouth corners, shifted to the outlines' centres: the corners move
    least as a mouth closes. A least-squares fit to the whole outline followed the lower lip of
    a frame the closing squeezed shut, which can sit low, and made the lips too big (on the
    test's astronaut 7 frames of 138 over the limit, 6 this way; 16 and 9 of 244 on another pair).
    """
    corners = [0, len(lm.OUTER_UPPER) - 1]
    across_rest = (rest[corners[1]] - rest[corners[0]]) @ np.array([1, 1j])
    across_here = (here[corners[1]] - here[corners[0]]) @ np.array([1, 1j])
    k = across_here / across_rest if abs(across_rest) > 1e-6 else 1.0 + 0j
    turn = np.array([[k.real, -k.imag], [k.imag, k.real]])
    return np.hstack([turn, (here.mean(axis=0) - turn @ rest.mean(axis=0))[:, None]]).astype(np.float32)


@dataclass(frozen=True)
class FacePose:
    open: float
    shape: float
    blink: float
    head_dx: float
    head_dy: float
    head_angle: float


class FaceAnimator:
    def __init__(self, image: np.ndarray, face: Face, rng: np.random.Generator,
                 closing: Closing | None = None) -> None:
        """``closing``: this frame's (video-to-video): the rigs are built on the face with its mouth closed."""
        h, w = image.shape[:2]
        own = face.points
        face = Face(closing.close(own)) if closing is not None else face
        self._neutral = closing.neutral if closing is not None else 0.0
        fx0, fy0, fx1, fy1 = face.box
        fw, fh = fx1 - fx0, fy1 - fy0
        x0 = max(0, int(fx0 - _CROP_MARGIN * fw))
        x1 = min(w, int(np.ceil(fx1 + _CROP_MARGIN * fw)))
        y0 = max(0, int(fy0 - (_CROP_MARGIN + 0.15) * fh))
        y1 = min(h, int(np.ceil(fy1 + _CROP_MARGIN * fh)))
        self.box = (x0, y0, x1, y1)
        self.points = face.points
        self.source = np.ascontiguousarray(image[y0:y1, x0:x1])
        pts = face.points - np.array([x0, y0], np.float32)
        size = (x1 - x0, y1 - y0)
        self.eye_px = face.eye_distance
        self.mouth = MouthRig(_with_rest_lips(pts, closing, (x0, y0)), size)
        self.eyes = [EyeRig(pts, side, size) for side in ("right", "left")]
        self.head = HeadRig((fx0 - x0, fy0 - y0, fx1 - x0, fy1 - y0), pts[lm.CHIN], size)
        # Only this part of the crop ever changes: elsewhere every map is the identity, the pixels the frame has.
        boxes = np.array([self.head.moving_box(), self.mouth.warp.roi, *(eye.warp.roi for eye in self.eyes)])
        self._roi_grid: np.ndarray | None = None  # the mouth warp's pixel positions, once a dub needs them
        self._live = (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())
        # The lips' colour where they are in these pixels (open or not).
        seen = own - np.array([x0, y0], np.float32)
        outer = np.concatenate([seen[list(lm.OUTER_UPPER)], seen[list(lm.OUTER_LOWER)][::-1]])
        inner = np.concatenate([seen[list(lm.INNER_UPPER)], seen[list(lm.INNER_LOWER)][::-1]])
        if closing is not None:
            # An open source's mesh puts the inner lips on its teeth and in its cavity: the lips'
            # colour taken inside those contours was a muddy brown, and the cavity painted from it
            # read as near-black lips. The lips where the picture shows them leave both out.
            inner = np.concatenate([closing.upper, closing.lower[::-1]]) - np.array([x0, y0], np.float32)
        nose = pts[lm.NOSE_TIP]
        r = int(0.25 * self.eye_px)
        cheek = (int(nose[0] - 3 * r), int(nose[1] - r), int(nose[0] + 3 * r), int(nose[1] + r))
        # A smile that already shows teeth keeps its own (they rise with the upper lip);
        # painted ones under them would double the row.
        self._paint_teeth = float(1 - smoothstep(0.03 * self.eye_px, 0.08 * self.eye_px, self.mouth.source_gap))
        self.palette = palette_from(self.source, outer, inner, cheek)
        # A fixed, seeded grain so painted areas are not flat colour.
        grain = rng.normal(0, 1, (size[1], size[0])).astype(np.float32)
        self.grain = 1 + 0.06 * cv2.GaussianBlur(grain, (0, 0), 0.8) / 0.35

    def follow(self, frame: np.ndarray, face: Face, closing: Closing | None = None) -> bool:
        """Take this frame's pixels for ``face`` if it only slid since the rigs were built.

        Rebuilding the rigs costs more than animating a frame; a face that moved by whole
        pixels (camera drift, small head moves) keeps them. False: the face changed shape
        or left the picture, build a new animator. With ``closing``, the face is compared
        with its mouth closed: a mouth that talks in the source keeps the rigs too.
        """
        points = closing.close(face.points) if closing is not None else face.points
        shift = (points - self.points).mean(axis=0)
        if np.abs(points - self.points - shift).mean() > _FOLLOW_TOLERANCE * self.eye_px:
            return False
        # The rig opens the lips where they meet when closed: once the source's mouth has been
        # seen more closed than when the rig was built (a clip that starts mid-word), rebuild.
        if closing is not None and closing.neutral < self._neutral - _NEUTRAL_TOLERANCE:
            return False
        dx, dy = (int(round(v)) for v in shift)
        x0, y0, x1, y1 = self.box
        h, w = frame.shape[:2]
        if x0 + dx < 0 or y0 + dy < 0 or x1 + dx > w or y1 + dy > h:
            return False
        self.box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
        self.points = self.points + np.array([dx, dy], np.float32)
        self.source = np.ascontiguousarray(frame[y0 + dy : y1 + dy, x0 + dx : x1 + dx])
        return True

    def render(self, frame: np.ndarray, pose: FacePose, closing: Closing | None = None) -> None:
        """Draw this face in ``pose`` into ``frame`` (in place); ``closing``: shut the frame's own mouth first."""
        move = (pose.head_dx, pose.head_dy, pose.head_angle)
        # No head motion of our own (video-to-video keeps the source's): the identity map.
        mapping = self.head.backward_map(*move) if any(move) else self.head.identity_map()
        mouth_pose = MouthPose(open=pose.open, shape=pose.shape)
        x0, y0, x1, y1 = self.box
        source = self.source
        if closing is not None:
            closing = closing.moved((-x0, -y0))
            if closing.rest is not None and closing.outline is not None:
                source = self._closed_on_rest_lips(closing)
                closing = None  # shut already: the rig only opens it
        self._add_local(mapping, self.mouth.warp, *self.mouth.forward_tables(mouth_pose, closing))
        if pose.blink > 0.01:
            for eye in self.eyes:
                self._add_local(mapping, eye.warp, *eye.forward_tables(pose.blink))
        crop = frame[y0:y1, x0:x1]
        crop[...] = source  # outside the live part nothing moves (and an overlapping speaker is drawn over, as ever)
        lx0, ly0, lx1, ly1 = self._live
        crop[ly0:ly1, lx0:lx1] = cv2.remap(source, mapping[ly0:ly1, lx0:lx1], None, cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
        if pose.open > 0.01:
            upper, lower = self.mouth.inner_lips(mouth_pose)
            upper = self.head.forward_points(upper, *move)
            lower = self.head.forward_points(lower, *move)
            paint_interior(crop, upper, lower, self.eye_px, self.palette, self.grain, teeth=self._paint_teeth)

    def _closed_on_rest_lips(self, closing: Closing) -> np.ndarray:
        """The crop with its mouth closed, and the source's most closed lips put over the squeezed ones.

        Squeezed shut out of an open frame, the lips are that frame's: stretched, shadowed, with
        the old opening's dark edge on the lower lip, which the rig then opens as if it were lip
        (near-black lower lips). The rest frame's lips, aligned to where the closing put this
        frame's (rotation and size too), are what the rig opens instead, as it opens a photo's.
        """
        warp = self.mouth.warp
        rx0, ry0, rx1, ry1 = warp.roi
        if self._roi_grid is None:
            xs, ys = np.meshgrid(np.arange(rx0, rx1, dtype=np.float32), np.arange(ry0, ry1, dtype=np.float32))
            self._roi_grid = np.dstack([xs, ys])
        back = warp.backward(*self.mouth.forward_tables(MouthPose(open=0.0, shape=0.0), closing))
        closed = self.source.copy()
        closed[ry0:ry1, rx0:rx1] = cv2.remap(self.source, self._roi_grid + back, None, cv2.INTER_LINEAR,
                                             borderMode=cv2.BORDER_REPLICATE)
        # Fades in with the closing: a mouth barely open beyond its rest stays the frame's own.
        strength = float(smoothstep(0.0, _REST_FADE_E * self.eye_px, closing.amount))
        rest = closing.rest
        assert rest is not None
        to_here = _rest_placement(closing)
        outline = rest.outline @ to_here[:, :2].T + to_here[:, 2]
        h, w = closed.shape[:2]
        pad = int(np.ceil(2.5 * REST_GROW_E * self.eye_px)) + 2
        bx0, by0 = np.maximum(np.floor(outline.min(axis=0)).astype(int) - pad, 0)
        bx1, by1 = np.minimum(np.ceil(outline.max(axis=0)).astype(int) + pad + 1, (w, h))
        if bx1 - bx0 < 4 or by1 - by0 < 4 or strength <= 0:
            return closed
        local = to_here.copy()
        local[:, 2] -= (bx0, by0)
        layer = cv2.warpAffine(rest.layer, local, (int(bx1 - bx0), int(by1 - by0)), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        patch = np.ascontiguousarray(layer[..., :3])
        alpha = layer[..., 3].astype(np.float32) * np.float32(strength / 255.0)
        here = closed[by0:by1, bx0:bx1]
        # The light of this frame, not the rest frame's: matched on the feathered rim, where both are
        # skin (every third pixel is plenty for a mean).
        thin = alpha[::3, ::3]
        rim = (thin > 0.02 * strength) & (thin < 0.5 * strength)
        if rim.sum() > 10:
            ratio = here[::3, ::3][rim].mean(axis=0) / np.maximum(patch[::3, ::3][rim].mean(axis=0), 1.0)
            patch = cv2.multiply(patch, (*np.clip(ratio, 0.8, 1.25).tolist(), 1.0))
        here[...] = cv2.blendLinear(patch, here, alpha, 1 - alpha)
        return closed

    @staticmethod
    def _add_local(mapping: np.ndarray, warp, fwd_u: np.ndarray, fwd_v: np.ndarray) -> None:
        x0, y0, x1, y1 = warp.roi
        at = mapping[y0:y1, x0:x1]
        mapping[y0:y1, x0:x1] = at + warp.backward(fwd_u, fwd_v, at)
