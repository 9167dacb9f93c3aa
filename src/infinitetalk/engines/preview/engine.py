"""The preview engine: a CPU, download-free talking-head animation of a portrait or a video.

It is a preview, and says so: it moves the jaw, lips, lids and head of the photo with
warps driven by the speech's energy and spectrum; it does not invent a new face, turn
the head or show a tongue that says "th". See docs/preview-engine.md.

Image-to-video animates the portrait with speech, blinks and a little head motion.
Video-to-video keeps the source's own motion (no added blinks or head motion) and
re-animates each speaker's mouth on every frame where their face is found, after closing
the source's own mouth motion (``neutral.py``); frames where it is lost pass through
unchanged. ``generate_chunks`` makes the same frames in chunks a long job can resume after.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

import cv2
import numpy as np

from infinitetalk.engines.base import (
    CancelToken,
    ChunkResult,
    EngineJob,
    EngineState,
    ProgressCallback,
    chunk_after,
)
from infinitetalk.engines.preview.animator import FaceAnimator, FacePose
from infinitetalk.engines.preview.audio_features import speech_features
from infinitetalk.engines.preview.faces import speaker_faces
from infinitetalk.engines.preview.landmarks import Face
from infinitetalk.engines.preview.neutral import NeutralMouth
from infinitetalk.engines.preview.tracking import FaceTracker
from infinitetalk.engines.preview.tracks import HeadTrack, blink_track, head_track
from infinitetalk.errors import EngineError
from infinitetalk.schema import Mode

_PROGRESS_EVERY = 10  # frames
#: Frames per chunk of ``generate_chunks``: 2.88 s at 25 fps, what the neural engine adds per chunk.
PREVIEW_CHUNK_FRAMES = 72


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
        yield from self._frames(job, progress, cancel, start=0)

    def generate_chunks(
        self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken, resume: EngineState | None = None
    ) -> Iterator[ChunkResult]:
        """The job in chunks of ``PREVIEW_CHUNK_FRAMES`` frames (the last one shorter), each with its state.

        The state is the chunk's index and the job's length: every frame follows from the job
        alone. Image-to-video's motion plans and each face's grain come from the seed, so a
        resumed run starts drawing at the chunk's first frame. Video-to-video carries the face
        tracker, each speaker's neutral mouth and the animators' rigs from frame to frame, and
        the tracker is mediapipe's graph, whose state cannot be taken out or put back; so a
        resumed run replays the tracking (and the neutral mouths and rig choices that follow
        it) over the frames already made, without drawing them: on a 640x640 source a replayed
        frame costs ~5 ms of CPU, a made one ~14 ms (before encoding).
        """
        count = -(-job.num_frames // PREVIEW_CHUNK_FRAMES)
        first = 0 if resume is None else chunk_after(resume, job.num_frames, count)
        chunk, start = np.empty((0, job.height, job.width, 3), np.uint8), 0

        def in_chunk(i: int) -> np.ndarray:
            return chunk[i - start]

        # Frames are drawn straight into the chunk: one full-frame copy fewer per frame.
        frames = self._frames(job, progress, cancel, start=first * PREVIEW_CHUNK_FRAMES, into=in_chunk)
        try:
            for index in range(first, count):
                start = index * PREVIEW_CHUNK_FRAMES
                chunk = np.empty((min(PREVIEW_CHUNK_FRAMES, job.num_frames - start), job.height, job.width, 3),
                                 np.uint8)
                filled = sum(1 for _ in islice(frames, len(chunk)))
                if filled < len(chunk):
                    raise EngineError(f"the source gave {start + filled} frames, the job needs {job.num_frames}")
                state = {"chunk": np.array(index, np.int64), "num_frames": np.array(job.num_frames, np.int64)}
                yield ChunkResult(index, count, chunk, state)
        finally:
            frames.close()  # the tracker's mediapipe graphs, when a caller stops early

    def _frames(self, job: EngineJob, progress: ProgressCallback, cancel: CancelToken, start: int,
                into: Callable[[int], np.ndarray] | None = None) -> Iterator[np.ndarray]:
        """The job's frames from frame ``start`` on; progress is over the whole job.

        ``into(i)``: the array frame ``i`` is drawn in (and yielded as); by default a new one each frame.
        """
        count = -(-job.num_frames // PREVIEW_CHUNK_FRAMES)
        if start >= job.num_frames:
            progress(1.0, f"chunk {count}/{count}")
            return

        # 1. Faces in the first picture, one per speaker (picture, masks and boxes are at the output size)
        progress(start / job.num_frames, "finding faces")
        assert job.image is not None
        first = np.ascontiguousarray(job.image)
        faces = speaker_faces(first, job.speakers)
        cancel.raise_if_canceled()

        # 2. Motion per speaker, all from one seeded generator
        rng = np.random.default_rng(job.seed)
        still = job.mode is Mode.IMAGE_TO_VIDEO
        plans = [self._plan(job, speaker.audio, face, rng, still) for speaker, face in zip(job.speakers, faces,
                                                                                             strict=True)]
        grain_seeds = rng.integers(0, 2**31, len(faces))

        # 3. Frames (video-to-video: from the first, tracked but not drawn before ``start``)
        if still:
            animators = [FaceAnimator(first, face, np.random.default_rng(s)) for face, s in zip(faces, grain_seeds,
                                                                                                  strict=True)]
            sources: Iterator[tuple[np.ndarray, list[Face | None]]] = (
                (first, faces) for _ in range(start, job.num_frames)
            )
            tracked, neutral, offset = None, [], start
        else:
            assert job.video_frames is not None
            animators = [None] * len(faces)
            neutral = [NeutralMouth() for _ in faces]
            tracked = FaceTracker(faces)
            sources = _tracked(job.video_frames(), tracked, neutral, ahead=job.fps)
            offset = 0
            if start:
                progress(start / job.num_frames, f"catching up to chunk {start // PREVIEW_CHUNK_FRAMES + 1}/{count}")
        # OpenCV on this thread alone while frames are drawn: each warp is a few hundred thousand
        # pixels, and split over OpenCV's pool the hand-offs cost more than they save, while the
        # encoder's thread already keeps a second core busy (on 2 loaded cores a frame took ~5.3 ms
        # of CPU with the pool, ~3.9 ms without). The setting is the process's: put back at the end.
        cv2_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for i, (source, current) in enumerate(sources, start=offset):
                cancel.raise_if_canceled()
                drawn = i >= start
                if drawn:
                    frame = into(i) if into is not None else np.empty_like(source)
                    np.copyto(frame, source)
                for k, (plan, face) in enumerate(zip(plans, current, strict=True)):
                    if face is None:
                        continue  # this speaker's face is lost in this frame: leave it as it is
                    # Video-to-video: the source's own mouth motion is closed first, the new speech opens it.
                    closing = neutral[k].closing(source, face.points) if tracked else None
                    if tracked and (animators[k] is None or not animators[k].follow(source, face, closing)):
                        animators[k] = FaceAnimator(source, face, np.random.default_rng(grain_seeds[k]), closing)
                    if drawn:
                        animators[k].render(frame, plan.pose(i), closing)
                if not drawn:
                    continue
                done = i + 1
                # Every few frames, and at each chunk's end (a resumed run starts from there).
                if (i - start) % _PROGRESS_EVERY == 0 or done % PREVIEW_CHUNK_FRAMES == 0 or done == job.num_frames:
                    progress(done / job.num_frames, f"chunk {i // PREVIEW_CHUNK_FRAMES + 1}/{count}")
                yield frame
        finally:
            cv2.setNumThreads(cv2_threads)
            if tracked:
                tracked.close()

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
