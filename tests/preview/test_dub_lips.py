"""Issue 24: a dub of a talking source keeps the lower lip's colour.

Dubbing a source whose mouth already opens (the engine's own video of one sentence, dubbed with
another) closes the source's mouth and opens it again for the new speech. The lower lip under
the painted cavity must look as it does when the same portrait is rendered straight from the
photo with the same speech: same speech, same opening in every frame, so frame i of the dub is
compared with frame i of the straight render. The lip is read with the face mesh in CIELAB
lightness: the lower half of its band between the outer and inner lower-lip contours, middle half
of the mouth. The mesh's inner lower contour sits on the lip's inner edge in one frame and on the
cavity's edge in the next, even on a straight render, so the band's upper half is lip or cavity
by the mesh's whim; its lower half is lip wherever the picture has one, and the defect (the dark
cavity run into the chin) darkens exactly that half.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.color import rgb2lab

from infinitetalk.engines.preview import PreviewEngine
from infinitetalk.engines.preview import landmarks as lm
from infinitetalk.eval.video import iter_frames
from infinitetalk.render.render import render
from infinitetalk.schema import GenerationRequest

ENGINE = PreviewEngine()
#: L* a dubbed frame's lower lip may lose against the straight render's same frame. The defect
#: took 17-50 (near-black lips, the cavity run into the chin); mesh jitter on a sound lip is a few.
MAX_DARKER_L = 12.0
#: Frames the mesh may miss the lip in: a second straight render of the astronaut (another seed, so
#: other head motion) has 9-10 of 138 (7%) darker by over MAX_DARKER_L than the first; the defect 50-78.
MAX_MISSED_SHARE = 0.1
#: L* the median over all frames may lose: the two straight renders differ by 1-2, the defect by 10-12.
MAX_MEDIAN_DARKER_L = 5.0


def make(out: Path, **fields: object) -> Path:
    return render(GenerationRequest.parse(fields), out, engine=ENGINE).path


def lower_lip_lightness(video: Path) -> np.ndarray:
    """Per frame, the median L* of the lower half of the lower lip's band (NaN where no face is found)."""
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, refine_landmarks=True, max_num_faces=1) as mesh:
        for frame in iter_frames(video):
            faces = lm.faces_in(mesh, frame)
            if not faces:
                out.append(np.nan)
                continue
            pts = faces[0].points
            outer, inner = pts[list(lm.OUTER_LOWER)], pts[list(lm.INNER_LOWER)]
            band = np.concatenate([outer, ((inner + outer) / 2)[::-1]])
            mask = np.zeros(frame.shape[:2], np.uint8)
            cv2.fillPoly(mask, [np.round(band).astype(np.int32)], 255)
            left, right = pts[lm.MOUTH_CORNERS[0], 0], pts[lm.MOUTH_CORNERS[1], 0]
            mask[:, : int(left + 0.25 * (right - left))] = 0  # the corners are mostly shadow
            mask[:, int(left + 0.75 * (right - left)) :] = 0
            ys, xs = np.nonzero(mask)
            out.append(float(np.median(rgb2lab(frame[ys, xs][None] / 255.0)[0, :, 0])) if len(xs) else np.nan)
    return np.array(out)


@pytest.fixture(scope="module", params=["astronaut", "grace"])
def renders(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path,
            grace_hopper_path: Path, speech_wav: Path, other_speech_wav: Path) -> dict[str, Path]:
    """A talking source, its dub and the straight render: the astronaut smiles with her teeth showing, Grace's
    lips are thin."""
    portrait = {"astronaut": astronaut_path, "grace": grace_hopper_path}[request.param]
    out = tmp_path_factory.mktemp(f"dub-lips-{request.param}")
    source = make(out / "source.mp4", image=str(portrait), audio=str(speech_wav), seed=3)
    return {
        "source": source,
        "dub": make(out / "dub.mp4", mode="video-to-video", video=str(source), audio=str(other_speech_wav), seed=2),
        "straight": make(out / "straight.mp4", image=str(portrait), audio=str(other_speech_wav), seed=2),
    }


@pytest.mark.slow  # with the next: six renders with face tracking, ~25 s of CPU on 2 cores
def test_dubbed_lower_lip_keeps_its_lightness(renders: dict[str, Path]) -> None:
    dub, straight = lower_lip_lightness(renders["dub"]), lower_lip_lightness(renders["straight"])
    assert len(dub) == len(straight) and not np.isnan(dub).any() and not np.isnan(straight).any()
    darker = straight - dub
    missed = int((darker > MAX_DARKER_L).sum())
    worst = int(np.argmax(darker))
    assert missed <= MAX_MISSED_SHARE * len(dub), (
        f"{missed} of {len(dub)} frames' lower lip darker than the straight render's by over {MAX_DARKER_L} L* "
        f"(worst: frame {worst}, {dub[worst]:.1f} against {straight[worst]:.1f})")
    assert np.median(straight) - np.median(dub) <= MAX_MEDIAN_DARKER_L, (np.median(dub), np.median(straight))


@pytest.mark.slow
def test_dub_paints_with_the_lips_own_colour(renders: dict[str, Path]) -> None:
    """The cavity's colours come from the lips: on an open source frame they are the lips' as the photo has them.

    The mesh of an open mouth puts its inner lips on the teeth and in the cavity; the lips' colour
    taken inside them was a brown (144, 102, 91) where the photo's lips are (204, 154, 142), and
    the cavity painted from it read as near-black lips.
    """
    from infinitetalk.engines.preview.animator import FaceAnimator
    from infinitetalk.engines.preview.neutral import NeutralMouth

    frames = [f for _, f in zip(range(25), iter_frames(renders["source"]), strict=False)]
    faces = [lm.detect_faces(f)[0] for f in frames]
    mouth = NeutralMouth()
    for frame, face in zip(frames, faces, strict=True):
        mouth.observe(frame, face.points)
    widest = int(np.argmax([np.linalg.norm(f.points[14] - f.points[13]) / f.eye_distance for f in faces]))
    closing = mouth.closing(frames[widest], faces[widest].points)
    assert closing.amount > 0  # the source's mouth is open in that frame
    dubbed = FaceAnimator(frames[widest], faces[widest], np.random.default_rng(0), closing).palette.lip
    rest = next(iter(iter_frames(renders["straight"])))
    straight = FaceAnimator(rest, lm.detect_faces(rest)[0], np.random.default_rng(0)).palette.lip
    assert np.abs(dubbed - straight).max() < 25, (dubbed, straight)


def test_rest_lips_follow_the_head(astronaut_path: Path) -> None:
    """The most closed lips seen are put on a later frame turned and scaled as that frame's head is."""
    from infinitetalk.engines.preview.animator import _lips_placement
    from infinitetalk.engines.preview.neutral import NeutralMouth

    photo = cv2.cvtColor(cv2.imread(str(astronaut_path)), cv2.COLOR_BGR2RGB)
    points = lm.detect_faces(photo)[0].points
    mouth = NeutralMouth()
    mouth.observe(photo, points)
    rest = mouth._rest
    assert rest is not None
    # The head turned by 9 degrees about the nose, and a little nearer the camera.
    turn = cv2.getRotationMatrix2D(tuple(map(float, points[lm.NOSE_TIP])), 9.0, 1.06)
    turned = cv2.warpAffine(photo, turn, photo.shape[1::-1], flags=cv2.INTER_LINEAR)
    outline = rest.outline + (points[0] - rest.points[0])  # in the photo's pixels
    outline_here = outline @ turn[:, :2].T + turn[:, 2]

    def misfit(to_here: np.ndarray) -> float:
        layer = cv2.warpAffine(rest.layer, to_here, photo.shape[1::-1], flags=cv2.INTER_LINEAR)
        lips = layer[..., 3] > 200
        return float(np.abs(layer[..., :3][lips].astype(np.float32) - turned[lips]).mean())

    followed = misfit(_lips_placement(rest.outline, outline_here.astype(np.float32)))
    shifted = _lips_placement(rest.outline, rest.outline + (outline_here.mean(axis=0) - rest.outline.mean(axis=0)))
    assert followed < 6.0 < misfit(shifted), (followed, misfit(shifted))
