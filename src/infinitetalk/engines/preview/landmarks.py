"""Face landmarks for the preview engine: mediapipe's face mesh, with a second pass for small faces.

The face mesh finds faces that fill a fair part of the picture; a face 60-120 px wide in
a 640 px frame is often missed. So when the mesh finds fewer faces than the full-range
face detector, each detector box it missed is cropped with a margin, upscaled, meshed on
its own and mapped back. When neither finds anything, overlapping tiles of the picture
are upscaled and meshed one by one (the detector misses faces below ~50 px too).
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from dataclasses import dataclass

import cv2
import numpy as np

#: Faces narrower than this (output pixels, eye corner to eye corner x 2.2) are too small to animate.
MIN_FACE_PX = 40
_UPSCALE_TO = 384  # side of the crop a small face is meshed on
_MARGIN = 0.6  # crop margin around a detector box, as a share of the box size

# mediapipe's graphs are not safe to share between threads; one lock keeps a worker with
# several engine threads correct (detection runs once per video, so it costs nothing).
_lock = threading.Lock()


#: mediapipe's helpers for drawing results onto pictures. Its package imports them up front, and
#: matplotlib's pyplot with them: ~0.35 s of a preview's CPU (about 7% of a 20 s clip at 480p),
#: for code that never draws. They are put off until something asks for one of their names.
_DRAWING = ("mediapipe.python.solutions.drawing_utils", "mediapipe.python.solutions.drawing_styles")


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until one of its names is asked for; then imports it and steps aside."""

    def __getattr__(self, attr: str) -> object:
        if attr.startswith("__"):
            raise AttributeError(attr)  # the import machinery's probes (__path__, ...) must not load it
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, real)
        return getattr(real, attr)


def import_mediapipe() -> types.ModuleType:
    """mediapipe, imported without its drawing helpers (see ``_DRAWING``); they load when first used."""
    if "mediapipe" not in sys.modules:
        for name in _DRAWING:
            sys.modules.setdefault(name, _OnFirstUse(name))
    import mediapipe

    for name in _DRAWING:
        stand_in = sys.modules.get(name)
        if isinstance(stand_in, _OnFirstUse):
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, stand_in)
    return mediapipe


@dataclass(frozen=True)
class Face:
    """One face: 478 mesh points (x, y) in output pixels."""

    points: np.ndarray  # float32 (478, 2)

    @property
    def box(self) -> tuple[float, float, float, float]:
        x0, y0 = self.points.min(axis=0)
        x1, y1 = self.points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def eye_distance(self) -> float:
        """Distance between the eye centres, the face's unit of length."""
        return float(np.linalg.norm(eye_centre(self.points, "left") - eye_centre(self.points, "right")))

    @property
    def width(self) -> float:
        x0, _, x1, _ = self.box
        return x1 - x0


# Landmark indices of the mediapipe face mesh (canonical topology).
RIGHT_EYE = (33, 133, 159, 145)  # outer corner, inner corner, upper lid, lower lid (image left)
LEFT_EYE = (263, 362, 386, 374)
MOUTH_CORNERS = (61, 291)
INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
CHIN, NOSE_TIP, FOREHEAD = 152, 1, 10


def eye_centre(points: np.ndarray, side: str) -> np.ndarray:
    idx = LEFT_EYE if side == "left" else RIGHT_EYE
    return points[list(idx)].mean(axis=0)


def detect_faces(image: np.ndarray, max_faces: int = 4) -> list[Face]:
    """All faces found in an RGB uint8 image, largest first."""
    mp = import_mediapipe()

    h, w = image.shape[:2]
    with _lock:
        faces = _mesh(mp, image, max_faces)
        boxes = _detector_boxes(mp, image)
        for bx0, by0, bx1, by1 in boxes:
            if any(_covers(f, (bx0, by0, bx1, by1)) for f in faces):
                continue
            mx, my = (bx1 - bx0) * _MARGIN, (by1 - by0) * _MARGIN
            x0, y0 = max(0, int(bx0 - mx)), max(0, int(by0 - my * 1.3))
            x1, y1 = min(w, int(bx1 + mx)), min(h, int(by1 + my))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            scale = _UPSCALE_TO / max(x1 - x0, y1 - y0)
            crop = cv2.resize(image[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            for face in _mesh(mp, crop, 1):
                faces.append(Face((face.points / scale + (x0, y0)).astype(np.float32)))
        if not faces:
            faces = _tiled(mp, image)
    faces = [f for f in faces if f.eye_distance * 2.2 >= MIN_FACE_PX]
    return sorted(faces, key=lambda f: -f.width)


def _tiled(mp, image: np.ndarray) -> list[Face]:
    """Mesh 2x-upscaled, overlapping half-size tiles (3 across, 2 down); keep one face per place."""
    h, w = image.shape[:2]
    tw, th = w // 2, h * 2 // 3
    found: list[Face] = []
    for ty in (0, h - th):
        for tx in (0, (w - tw) // 2, w - tw):
            tile = cv2.resize(image[ty : ty + th, tx : tx + tw], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
            for face in _mesh(mp, tile, 2):
                face = Face((face.points / 2 + (tx, ty)).astype(np.float32))
                centre = face.points.mean(axis=0)
                if all(np.linalg.norm(centre - f.points.mean(axis=0)) > 0.5 * f.width for f in found):
                    found.append(face)
    return found


def _mesh(mp, image: np.ndarray, max_faces: int) -> list[Face]:
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, refine_landmarks=True, max_num_faces=max_faces, min_detection_confidence=0.5
    ) as mesh:
        return faces_in(mesh, image)


def faces_in(mesh, image: np.ndarray) -> list[Face]:
    """Run a mediapipe FaceMesh on an RGB image; its faces with points in the image's pixels."""
    h, w = image.shape[:2]
    result = mesh.process(np.ascontiguousarray(image))
    return [
        Face(np.array([(p.x * w, p.y * h) for p in lms.landmark], dtype=np.float32))
        for lms in result.multi_face_landmarks or []
    ]


def _detector_boxes(mp, image: np.ndarray) -> list[tuple[float, float, float, float]]:
    h, w = image.shape[:2]
    # model_selection=1: the full-range model, trained for faces up to ~5 m from the camera.
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as det:
        result = det.process(np.ascontiguousarray(image))
    boxes = []
    for d in result.detections or []:
        b = d.location_data.relative_bounding_box
        boxes.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h))
    return boxes


def _covers(face: Face, box: tuple[float, float, float, float]) -> bool:
    """Whether a meshed face already accounts for a detector box (its centre lies inside the mesh)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0, x1, y1 = face.box
    return x0 <= cx <= x1 and y0 <= cy <= y1
