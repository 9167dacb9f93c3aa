"""Which detected face belongs to which speaker: by mask, by box, or by size."""

from __future__ import annotations

import numpy as np

from infinitetalk.engines.base import Speaker
from infinitetalk.engines.preview.landmarks import Face
from infinitetalk.errors import InvalidRequest, NoFaceDetected

NO_FACE_HINT = (
    "use a photo where one face is clearly visible, facing the camera, at least ~64 px wide "
    "(a head-and-shoulders portrait works best)"
)


def assign_faces(faces: list[Face], speakers: list[Speaker], size: tuple[int, int]) -> list[Face]:
    """One face per speaker. Masks and boxes are in output pixels (already cover-cropped)."""
    if not faces:
        raise NoFaceDetected(f"no face was found in the picture: {NO_FACE_HINT}", field="image")
    chosen: list[Face] = []
    for i, speaker in enumerate(speakers):
        if speaker.mask is not None:
            face = _best(faces, lambda f: _mask_share(f, speaker.mask))
            if face is None:
                raise NoFaceDetected(
                    f"no face was found inside the mask of speaker {i + 1}: paint the whole face to animate white, "
                    f"or {NO_FACE_HINT}",
                    field=f"mask[{i}]",
                )
        elif speaker.bbox is not None:
            b = speaker.bbox
            face = _best(faces, lambda f: _iou(f.box, (b.x0, b.y0, b.x1, b.y1)))
            if face is None:
                raise NoFaceDetected(
                    f"no face was found inside the box of speaker {i + 1}: draw the box around the face, "
                    f"or {NO_FACE_HINT}",
                    field=f"bbox[{i}]",
                )
        else:
            remaining = [f for f in faces if all(f is not c for c in chosen)]
            if not remaining:
                raise InvalidRequest(
                    f"{len(speakers)} speakers but only {len(faces)} face(s) found: give a mask or box per speaker",
                    code="no_face_detected",
                )
            face = remaining[0]  # largest first
        chosen.append(face)
    return chosen


def _best(faces: list[Face], score) -> Face | None:
    scored = [(score(f), f) for f in faces]
    best = max(scored, key=lambda sf: sf[0])
    return best[1] if best[0] > 0.05 else None


def _mask_share(face: Face, mask: np.ndarray) -> float:
    """Share of the face's landmarks that fall inside the mask."""
    h, w = mask.shape[:2]
    xs = np.clip(face.points[:, 0].round().astype(int), 0, w - 1)
    ys = np.clip(face.points[:, 1].round().astype(int), 0, h - 1)
    return float((mask[ys, xs] > 0).mean())


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
