"""The mouth rig on real landmarks: the gap it paints, and which way the lips move."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from infinitetalk.engines.preview.landmarks import detect_faces
from infinitetalk.engines.preview.mouth import MouthPose, MouthRig


def _rig(path: Path) -> MouthRig:
    image = np.asarray(Image.open(path).convert("RGB"))
    face = detect_faces(image)[0]
    return MouthRig(face.points, (image.shape[1], image.shape[0]))


def test_a_smile_keeps_its_own_teeth(astronaut_path: Path) -> None:
    # The astronaut smiles with her teeth showing: at rest nothing may be painted over them.
    rig = _rig(astronaut_path)
    assert rig.source_gap > 0.03 * rig.e  # her lips are apart in the photo
    top, bottom = rig.inner_lips(MouthPose(open=0.0, shape=0.0))
    assert np.abs(bottom - top).max() < 1.0


def test_opening_drops_the_lower_lip_more_than_it_raises_the_upper(grace_hopper_path: Path) -> None:
    rig = _rig(grace_hopper_path)
    rest_top, rest_bottom = rig.inner_lips(MouthPose(open=0.0, shape=0.0))
    top, bottom = rig.inner_lips(MouthPose(open=1.0, shape=0.0))
    mid = len(top) // 2
    down = rig.frame.ax_v
    raise_px = -float((top[mid] - rest_top[mid]) @ down)
    drop_px = float((bottom[mid] - rest_bottom[mid]) @ down)
    assert 0 < raise_px < drop_px
    assert drop_px > 0.15 * rig.e  # a wide-open mouth, not a twitch


def test_rounding_pulls_the_corners_in_and_spreading_out(grace_hopper_path: Path) -> None:
    rig = _rig(grace_hopper_path)

    def width(shape: float) -> float:
        top, _ = rig.inner_lips(MouthPose(open=0.3, shape=shape))
        return float(np.linalg.norm(top[-1] - top[0]))

    assert width(-1.0) < width(0.0) < width(1.0)
