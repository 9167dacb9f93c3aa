"""The preview engine's speed shortcuts give the pixels the plain computation gives.

Each shortcut (one np.interp for all of a warp's columns, a remap of only the part of the crop
that can move, OpenCV's pool left alone while frames are drawn) is checked against the slow way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from infinitetalk.engines.base import CancelToken, EngineJob, Speaker
from infinitetalk.engines.preview import PreviewEngine
from infinitetalk.engines.preview.animator import FaceAnimator, FacePose
from infinitetalk.engines.preview.landmarks import detect_faces
from infinitetalk.engines.preview.mouth import MouthPose
from infinitetalk.schema import Mode


@pytest.fixture(scope="module")
def portrait(grace_hopper_path: Path) -> np.ndarray:
    return np.asarray(Image.open(grace_hopper_path).convert("RGB").resize((288, 352), Image.LANCZOS))


@pytest.fixture(scope="module")
def animator(portrait: np.ndarray) -> FaceAnimator:
    return FaceAnimator(portrait, detect_faces(portrait, 1)[0], np.random.default_rng(3))


def _inverse_one_column_at_a_time(v: np.ndarray, fwd_v: np.ndarray) -> np.ndarray:
    back = np.empty_like(fwd_v)
    for j in range(fwd_v.shape[1]):
        back[:, j] = np.interp(v, np.maximum.accumulate(v + fwd_v[:, j]), v) - v
    return back


def test_all_columns_at_once_invert_like_one_at_a_time(animator: FaceAnimator) -> None:
    warp = animator.mouth.warp
    v = warp.v_grid.astype(np.float64)
    rng = np.random.default_rng(0)
    tables = [animator.mouth.forward_tables(MouthPose(open=o, shape=s))[1] for o, s in ((0.0, 0.0), (1.0, -1.0),
                                                                                         (0.6, 0.8))]
    # and rough ones: folds (a running maximum flattens them), jumps, and moves past the table's ends
    tables += [rng.normal(0, 8, tables[0].shape).astype(np.float32) for _ in range(3)]
    tables += [np.full(tables[0].shape, 1e3, np.float32), np.full(tables[0].shape, -1e3, np.float32)]
    for fwd_v in tables:
        expected = _inverse_one_column_at_a_time(v, fwd_v.astype(np.float64))
        np.testing.assert_allclose(warp._inverse_v(fwd_v), expected, atol=1e-6)


def test_only_the_moving_part_is_remapped_and_the_rest_is_the_picture(animator: FaceAnimator,
                                                                     portrait: np.ndarray) -> None:
    pose = FacePose(open=0.9, shape=0.4, blink=0.7, head_dx=2.5, head_dy=-1.5, head_angle=1.2)
    frame = portrait.copy()
    animator.render(frame, pose)

    # The plain way: every map over the whole crop, one remap of the whole crop.
    mapping = animator.head.backward_map(pose.head_dx, pose.head_dy, pose.head_angle)
    mouth = MouthPose(open=pose.open, shape=pose.shape)
    animator._add_local(mapping, animator.mouth.warp, *animator.mouth.forward_tables(mouth))
    for eye in animator.eyes:
        animator._add_local(mapping, eye.warp, *eye.forward_tables(pose.blink))
    whole = cv2.remap(animator.source, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x0, y0, x1, y1 = animator.box
    lx0, ly0, lx1, ly1 = animator._live
    drawn = frame[y0:y1, x0:x1]
    outside = np.ones(whole.shape[:2], bool)
    outside[ly0:ly1, lx0:lx1] = False
    assert outside.sum() > 0.1 * outside.size  # there is a part that is skipped
    assert np.array_equal(drawn[outside], whole[outside])
    assert np.array_equal(whole[outside], animator.source[outside])  # ... where nothing ever moves
    # Inside, the same remap; the mouth's interior is painted over it afterwards.
    painted = np.any(drawn != whole, axis=-1)
    assert painted.sum() < 0.05 * painted.size
    assert np.array_equal(frame[:y0], portrait[:y0]) and np.array_equal(frame[y1:], portrait[y1:])


def test_opencv_threads_are_put_back(portrait: np.ndarray) -> None:
    speech = np.random.default_rng(1).normal(0, 0.1, 40 * 640).astype(np.float32)
    job = EngineJob(mode=Mode.IMAGE_TO_VIDEO, speakers=[Speaker(audio=speech)], width=288, height=352, fps=25,
                    num_frames=40, seed=1, image=portrait)
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        chunks = PreviewEngine().generate_chunks(job, lambda *_: None, CancelToken())
        assert len(next(chunks).frames) == 40
        assert cv2.getNumThreads() == 1  # while the job's frames are being drawn
        chunks.close()
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_finding_faces_leaves_mediapipes_drawing_helpers_unloaded(grace_hopper_path: Path) -> None:
    # A fresh interpreter: this one may have imported mediapipe whole already. The helpers pull in
    # matplotlib's pyplot, ~0.35 s of CPU at every start of a render that never draws with them.
    script = f"""
import sys
import numpy as np
from PIL import Image
from infinitetalk.engines.preview.landmarks import detect_faces
image = np.asarray(Image.open({str(grace_hopper_path)!r}).convert("RGB").resize((288, 352)))
assert len(detect_faces(image, 1)) == 1
assert "matplotlib.pyplot" not in sys.modules, "face finding loaded pyplot"
import mediapipe as mp
from mediapipe.python.solutions import drawing_styles
assert mp.solutions.drawing_utils.DrawingSpec(color=(1, 2, 3)).color == (1, 2, 3)
assert drawing_styles.get_default_face_mesh_contours_style()
assert "matplotlib.pyplot" in sys.modules  # loaded once asked for, and working
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
