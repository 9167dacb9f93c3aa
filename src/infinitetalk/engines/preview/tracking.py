"""Faces followed through a video, frame by frame, for video-to-video.

mediapipe's face mesh in tracking mode follows faces cheaply from frame to frame; each
face of the first frame is matched to the nearest face found in the next, so a speaker
keeps their face. A face the mesh loses (turned away, covered, too small) is looked for
once more in an upscaled crop around where it was; if it is still missing, that frame
passes through unchanged for that speaker.
"""

from __future__ import annotations

import cv2
import numpy as np

from infinitetalk.engines.preview.landmarks import (
    INNER_LOWER,
    INNER_UPPER,
    Face,
    faces_in,
    import_mediapipe,
)

_MATCH = 0.6  # a face matches if its centre is within this share of the previous face's width
_CROP_MARGIN = 0.6
_UPSCALE_TO = 384
_MESH = 468  # face-mesh points without the refined iris ones
_STILL_PX = 0.75  # a face that moved less than this between two looks may skip the next one
# Lips count on their own (a mouth that talks hardly moves the average): the closing of a
# source's own mouth motion needs each frame's lips.
_UPPER_LIP, _LOWER_LIP = list(INNER_UPPER), list(INNER_LOWER)


class FaceTracker:
    def __init__(self, first: list[Face]) -> None:
        mp = import_mediapipe()
        self.previous: list[Face | None] = list(first)
        self._last_seen: list[Face] = list(first)
        self._moved = np.inf  # mean landmark motion at the last look, pixels (inf: look every frame)
        self._coasted = False
        # Only as many faces as speakers: with room for more, the mesh runs its detector on every
        # frame to look for them. No refine_landmarks: the iris points are not used by any rig.
        self._tracking = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False, refine_landmarks=False, max_num_faces=len(first)
        )
        self._static = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=False, max_num_faces=1)

    def update(self, frame: np.ndarray) -> list[Face | None]:
        """This frame's face for each speaker, or None where it was not found."""
        if self._coast():
            return self.previous
        found = faces_in(self._tracking, frame)
        current: list[Face | None] = []
        for last in self._last_seen:
            face = _nearest(found, last)
            if face is None:
                face = self._look_closer(frame, last)
            current.append(face)
            if face is not None:
                found = [f for f in found if f is not face]
        self._moved = max(
            (_motion(c, last) if c is not None else np.inf) for c, last in zip(current, self._last_seen, strict=True)
        )
        self._last_seen = [c if c is not None else last for c, last in zip(current, self._last_seen, strict=True)]
        self.previous = current
        self._coasted = False
        return current

    def _coast(self) -> bool:
        """Skip the mesh on every other frame while every face is found and nearly still.

        The mesh is the largest per-frame cost of video-to-video; a face that moved less than
        _STILL_PX since the last look (and whose lips opened or closed less than that) is where it
        was, to within what anyone can see.
        """
        if self._coasted or self._moved > _STILL_PX or any(f is None for f in self.previous):
            return False
        self._coasted = True
        return True

    def close(self) -> None:
        self._tracking.close()
        self._static.close()

    def _look_closer(self, frame: np.ndarray, last: Face) -> Face | None:
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = last.box
        mx, my = (x1 - x0) * _CROP_MARGIN, (y1 - y0) * _CROP_MARGIN
        cx0, cy0 = max(0, int(x0 - mx)), max(0, int(y0 - my))
        cx1, cy1 = min(w, int(x1 + mx)), min(h, int(y1 + my))
        if cx1 - cx0 < 8 or cy1 - cy0 < 8:
            return None
        scale = _UPSCALE_TO / max(cx1 - cx0, cy1 - cy0)
        crop = cv2.resize(frame[cy0:cy1, cx0:cx1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = [Face((f.points / scale + (cx0, cy0)).astype(np.float32)) for f in faces_in(self._static, crop)]
        return _nearest(faces, last)


def _motion(face: Face, last: Face) -> float:
    """How far a face moved between two looks, pixels: on average, or its mouth opened or closed."""
    # the first 468 points: the first frame's faces also carry the 10 refined iris points
    mean = float(np.abs(face.points[:_MESH] - last.points[:_MESH]).mean(axis=0).max())
    return max(mean, float(np.abs(_lip_gaps(face) - _lip_gaps(last)).max()))


def _lip_gaps(face: Face) -> np.ndarray:
    return np.linalg.norm(face.points[_LOWER_LIP] - face.points[_UPPER_LIP], axis=1)


def _nearest(faces: list[Face], last: Face) -> Face | None:
    if not faces:
        return None
    centre = last.points.mean(axis=0)
    distance, face = min(((float(np.linalg.norm(f.points.mean(axis=0) - centre)), f) for f in faces),
                         key=lambda df: df[0])
    return face if distance <= _MATCH * last.width else None
