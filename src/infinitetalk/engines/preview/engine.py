"""The preview engine: a CPU, download-free talking-head animation of one portrait.

It is a preview, and says so: it moves the jaw, lips, lids and head of the photo with
warps driven by the speech's energy and spectrum; it does not invent a new face, turn
the head or show a tongue that says "th". See docs/preview-engine.md.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from infinitetalk.engines.base import CancelToken, EngineJob, ProgressCallback
from infinitetalk.engines.preview.animator import FaceAnimator, FacePose
from infinitetalk.engines.preview.audio_features import speech_features
from infinitetalk.engines.preview.faces import assign_faces
from infinitetalk.engines.preview.landmarks import detect_faces
from infinitetalk.engines.preview.tracks import blink_track, head_track
from infinitetalk.errors import InvalidRequest
from infinitetalk.schema import Mode

_PROGRESS_EVERY = 10  # frames


class PreviewEngine:
    name = "preview"

    def __init__(self, *, phonemes: bool = False) -> None:
        """``phonemes``: close the lips on M/B/P from pocketsphinx phoneme timing (costs ~0.05 s per audio s)."""
        self.phonemes = phonemes

    def generate(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken) -> Iterator[np.ndarray]:
        # 1. Check inputs
        if job.mode is not Mode.IMAGE_TO_VIDEO or job.image is None:
            raise InvalidRequest("the preview engine animates a still portrait: use image-to-video", field="mode")
        progress(0.0, "finding faces")

        # 2. Faces, one per speaker (the picture, masks and boxes are already at the output size)
        image, speakers = np.ascontiguousarray(job.image), job.speakers
        faces = assign_faces(detect_faces(image), speakers, (job.width, job.height))
        cancel.raise_if_canceled()

        # 3. Motion per speaker, all from one seeded generator
        rng = np.random.default_rng(job.seed)
        plans = []
        for speaker, face in zip(speakers, faces, strict=True):
            feats = speech_features(speaker.audio, job.fps, job.num_frames)
            openness = feats.openness
            if self.phonemes:
                from infinitetalk.engines.preview.phonemes import lip_closures

                openness = openness * (1 - lip_closures(speaker.audio, job.fps, job.num_frames))
            blinks = blink_track(rng, job.num_frames, job.fps)
            head = head_track(rng, job.num_frames, job.fps, face.eye_distance, feats.energy)
            plans.append((FaceAnimator(image, face, rng), openness, feats.shape, blinks, head))

        # 4. Frames
        for i in range(job.num_frames):
            cancel.raise_if_canceled()
            frame = image.copy()
            for animator, openness, shape, blinks, head in plans:
                pose = FacePose(
                    open=float(openness[i]), shape=float(shape[i]), blink=float(blinks[i]),
                    head_dx=float(head.dx[i]), head_dy=float(head.dy[i]), head_angle=float(head.angle[i]),
                )
                animator.render(frame, pose)
            if i % _PROGRESS_EVERY == 0:
                progress(i / job.num_frames, "animating")
            yield frame
        progress(1.0, "animating")
