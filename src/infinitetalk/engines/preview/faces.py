"""Which detected face belongs to which speaker: by mask, by box, else by position.

With one speaker and no mask or box, the largest face speaks. With two, the two largest
faces are taken left to right: the first audio track is the leftmost face.
"""

from __future__ import annotations

import numpy as np

from infinitetalk.engines.base import Speaker
from infinitetalk.engines.preview.landmarks import Face, detect_faces
from infinitetalk.errors import NoFaceDetected
from infinitetalk.schema import BBox

NO_FACE_HINT = (
    "use a photo where one face is clearly visible, facing the camera, at least ~64 px wide "
    "(a head-and-shoulders portrait works best)"
)


def speaker_faces(picture: np.ndarray, speakers: list[Speaker]) -> list[Face]:
    """The face of each speaker in ``picture`` (RGB at the output size), or NoFaceDetected. The one rule the
    submit's check (``tasks.faces``) and the preview engine's render both apply, so they never disagree."""
    height, width = picture.shape[:2]
    return assign_faces(detect_faces(np.ascontiguousarray(picture)), speakers, (width, height))


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
            face = _best(faces, lambda f: _box_share(f, b))
            if face is None:
                raise NoFaceDetected(
                    f"no face was found inside the box of speaker {i + 1}: draw the box around the face, "
                    f"or {NO_FACE_HINT}",
                    field=f"bbox[{i}]",
                )
        else:
            remaining = [f for f in faces if all(f is not c for c in chosen)]
            if not remaining:
                raise NoFaceDetected(
                    f"{len(speakers)} speakers but only {len(faces)} face(s) found: give a mask or box per speaker",
                    field="image",
                )
            face = remaining[0] if len(speakers) == 1 else _left_to_right(faces, len(speakers))[i]
        chosen.append(face)
    return chosen


def _left_to_right(faces: list[Face], count: int) -> list[Face]:
    """The ``count`` largest faces, ordered left to right: speaker 1 is the leftmost."""
    return sorted(faces[:count], key=lambda f: f.box[0]) + faces[count:]


def _best(faces: list[Face], score) -> Face | None:
    scored = [(score(f), f) for f in faces]
    best = max(scored, key=lambda sf: sf[0])
    return best[1] if best[0] >= 0.5 else None  # most of the face inside the mask or box


def _mask_share(face: Face, mask: np.ndarray) -> float:
    """Share of the face's landmarks that fall inside the mask."""
    h, w = mask.shape[:2]
    xs = np.clip(face.points[:, 0].round().astype(int), 0, w - 1)
    ys = np.clip(face.points[:, 1].round().astype(int), 0, h - 1)
    return float((mask[ys, xs] > 0).mean())


def _box_share(face: Face, box: BBox) -> float:
    """Share of the face's landmarks inside the box; boxes people draw are loose, so not IoU."""
    x, y = face.points[:, 0], face.points[:, 1]
    return float(((x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)).mean())
