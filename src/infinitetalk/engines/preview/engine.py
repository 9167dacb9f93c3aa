"""The preview engine: a CPU, download-free talking-head animation of a portrait or a video.

It is a preview, and says so: it moves the jaw, lips, lids and head of the photo with
warps driven by the speech's energy and spectrum; it does not invent a new face, turn
the head or show a tongue that says "th". See docs/preview-engine.md.

Image-to-video animates the portrait with speech, blinks and a little head motion.
Video-to-video keeps the source's own motion (no added blinks or head motion) and
re-animates each speaker's mouth on every frame where their face is found, after closing
the source's own mouth motion (``neutral.py``); frames where it is lost pass through
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np

from infinitetalk.engines.base import CancelToken, EngineJob, ProgressCallback
from infinitetalk.engines.preview.animator import FaceAnimator, FacePose
from infinitetalk.engines.preview.audio_features import speech_features
from infinitetalk.engines.preview.faces import assign_faces
from infinitetalk.engines.preview.landmarks import Face, detect_faces
from infinitetalk.engines.preview.neutral import NeutralMouth
from infinitetalk.engines.preview.tracking import FaceTracker
from infinitetalk.engines.preview.tracks import HeadTrack, blink_track, head_track
from infinitetalk.schema import Mode

_PROGRESS_EVERY = 10  # frames


@dataclass
class _SpeakerPlan:
    """One speaker's motion over the whole video."""

    openness: np.ndarray
    shape: np.ndarray
    blinks: np.ndarray | None  # None: keep the source's own eyes (video-to-video)
    head: HeadTrack | None  # None: keep the source's own head motion

    def pose(self, i: int) -> FacePose:
        head = self.head
        return FacePose(
            open=float(self.openness[i]), shape=float(self.shape[i]),
            blink=float(self.blinks[i]) if self.blinks is not None else 0.0,
            head_dx=float(head.dx[i]) if head else 0.0, head_dy=float(head.dy[i]) if head else 0.0,
            head_angle=float(head.angle[i]) if head else 0.0,
        )


class PreviewEngine:
    name = "preview"

    def __init__(self, *, phonemes: bool = False) -> None:
        """``phonemes``: close the lips on M/B/P from pocketsphinx phoneme timing (costs ~0.05 s per audio s)."""
        self.phonemes = phonemes

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        # 1. Faces in the first picture, one per speaker (picture, masks and boxes are at the output size)
        progress(0.0, "finding faces")
        assert job.image is not None
        first = np.ascontiguousarray(job.image)
        faces = assign_faces(detect_faces(first), job.speakers, (job.width, job.height))
        cancel.raise_if_canceled()

        # 2. Motion per speaker, all from one seeded generator
        rng = np.random.default_rng(job.seed)
        still = job.mode is Mode.IMAGE_TO_VIDEO
        plans = [self._plan(job, speaker.audio, face, rng, still) for speaker, face in zip(job.speakers, faces,
                                                                                             strict=True)]
        grain_seeds = rng.integers(0, 2**31, len(faces))

        # 3. Frames
        if still:
            animators = [FaceAnimator(first, face, np.random.default_rng(s)) for face, s in zip(faces, grain_seeds,
                                                                                                  strict=True)]
            sources: Iterator[tuple[np.ndarray, list[Face | None]]] = ((first, faces) for _ in range(job.num_frames))
            tracked, neutral = None, []
        else:
            assert job.video_frames is not None
            animators = [None] * len(faces)
            neutral = [NeutralMouth() for _ in faces]
            tracked = FaceTracker(faces)
            sources = _tracked(job.video_frames(), tracked, neutral, ahead=job.fps)
        try:
            for i, (source, current) in enumerate(sources):
                cancel.raise_if_canceled()
                frame = source.copy()
                for k, (plan, face) in enumerate(zip(plans, current, strict=True)):
                    if face is None:
                        continue  # this speaker's face is lost in this frame: leave it as it is
                    # Video-to-video: the source's own mouth motion is closed first, the new speech opens it.
                    closing = neutral[k].closing(source, face.points) if tracked else None
                    if tracked and (animators[k] is None or not animators[k].follow(source, face, closing)):
                        animators[k] = FaceAnimator(source, face, np.random.default_rng(grain_seeds[k]), closing)
                    animators[k].render(frame, plan.pose(i), closing)
                if i % _PROGRESS_EVERY == 0:
                    progress(i / job.num_frames, "animating")
                yield frame
        finally:
            if tracked:
                tracked.close()
        progress(1.0, "animating")

    def _plan(self, job: EngineJob, audio: np.ndarray, face: Face, rng: np.random.Generator,
              still: bool) -> _SpeakerPlan:
        feats = speech_features(audio, job.fps, job.num_frames)
        openness = feats.openness
        if self.phonemes:
            from infinitetalk.engines.preview.phonemes import lip_closures

            openness = openness * (1 - lip_closures(audio, job.fps, job.num_frames))
        if not still:
            return _SpeakerPlan(openness, feats.shape, blinks=None, head=None)
        blinks = blink_track(rng, job.num_frames, job.fps)
        head = head_track(rng, job.num_frames, job.fps, face.eye_distance, feats.energy)
        return _SpeakerPlan(openness, feats.shape, blinks, head)


def _tracked(frames: Iterator[np.ndarray], tracker: FaceTracker, neutral: list[NeutralMouth],
             ahead: int) -> Iterator[tuple[np.ndarray, list[Face | None]]]:
    """Each source frame with its speakers' faces; the first ``ahead`` frames are tracked before any is drawn.

    The look ahead lets each speaker's neutral mouth see the source's lips meet before the
    first frame is closed to it: a clip that starts mid-word is not left open (or taken for a
    smile) until then. It costs memory for those frames (a second's worth), not time.
    """
    first = [(frame, tracker.update(frame)) for frame in islice(frames, ahead)]
    for frame, faces in first:
        for mouth, face in zip(neutral, faces, strict=True):
            if face is not None:
                mouth.observe(frame, face.points)
    yield from first
    for frame in frames:
        yield frame, tracker.update(frame)
