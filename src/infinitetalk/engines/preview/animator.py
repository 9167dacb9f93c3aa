"""One animated face: its crop, its rigs, and the per-frame warp that puts them together.

Only a crop around the head is ever warped; the rest of the picture is copied as is. Per
frame: head motion gives a smooth backward map over the crop; the mouth (and, while
blinking, the eyes) add their exact column-wise inverses on top, sampled where the head
motion looks; one cv2.remap warps the crop; the mouth interior is painted into the gap.
In video-to-video the rigs are built on the face with its mouth closed to the source's
neutral one (``neutral.py``), and each frame's mouth table closes the source's own
opening before it opens the mouth for the new speech.
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
from infinitetalk.engines.preview.neutral import Closing

_CROP_MARGIN = 0.7  # of the face's size, around its landmarks
#: Mean landmark change (after the shift is taken out), in eye distances, that still reuses the rigs.
_FOLLOW_TOLERANCE = 0.03
_NEUTRAL_TOLERANCE = 0.015  # eye distances the neutral mouth may close by and still reuse the rigs


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
        self.mouth = MouthRig(pts, size)
        self.eyes = [EyeRig(pts, side, size) for side in ("right", "left")]
        self.head = HeadRig((fx0 - x0, fy0 - y0, fx1 - x0, fy1 - y0), pts[lm.CHIN], size)
        # Only this part of the crop ever changes: elsewhere every map is the identity, the pixels the frame has.
        boxes = np.array([self.head.moving_box(), self.mouth.warp.roi, *(eye.warp.roi for eye in self.eyes)])
        self._live = (*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist())
        # The lips' colour where they are in these pixels (open or not).
        seen = own - np.array([x0, y0], np.float32)
        outer = np.concatenate([seen[list(lm.OUTER_UPPER)], seen[list(lm.OUTER_LOWER)][::-1]])
        inner = np.concatenate([seen[list(lm.INNER_UPPER)], seen[list(lm.INNER_LOWER)][::-1]])
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
        if closing is not None:
            closing = closing.moved((-x0, -y0))
        self._add_local(mapping, self.mouth.warp, *self.mouth.forward_tables(mouth_pose, closing))
        if pose.blink > 0.01:
            for eye in self.eyes:
                self._add_local(mapping, eye.warp, *eye.forward_tables(pose.blink))
        crop = frame[y0:y1, x0:x1]
        crop[...] = self.source  # outside the live part nothing moves (and an overlapping speaker is drawn over, as ever)
        lx0, ly0, lx1, ly1 = self._live
        crop[ly0:ly1, lx0:lx1] = cv2.remap(self.source, mapping[ly0:ly1, lx0:lx1], None, cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_REPLICATE)
        if pose.open > 0.01:
            upper, lower = self.mouth.inner_lips(mouth_pose)
            upper = self.head.forward_points(upper, *move)
            lower = self.head.forward_points(lower, *move)
            paint_interior(crop, upper, lower, self.eye_px, self.palette, self.grain, teeth=self._paint_teeth)

    @staticmethod
    def _add_local(mapping: np.ndarray, warp, fwd_u: np.ndarray, fwd_v: np.ndarray) -> None:
        x0, y0, x1, y1 = warp.roi
        at = mapping[y0:y1, x0:x1]
        mapping[y0:y1, x0:x1] = at + warp.backward(fwd_u, fwd_v, at)
