"""What a face does besides lip sync: blinks per eye, and the mouth while nobody speaks.

- Blinks: each eye's lid gap over its width, from the face mesh, frame by frame. A blink is a
  dip under :data:`BLINK_DEPTH` of that eye's usual opening (its median over the video). Blinks
  are counted per eye; one that closes one eye with no blink of the other within
  :data:`PAIR_FRAMES` frames is a one-eyed blink (a wink).
- The mouth in silence: speech is found by a voice-activity model (:mod:`infinitetalk.eval.vad`);
  the mouth aperture's spread (standard deviation) over the silent frames, as a share of its
  spread while speaking. A mouth that rests through pauses scores near 0; one that keeps
  chewing on room noise, near 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infinitetalk.eval.vad import speech_frames

#: A dip of an eye's lid gap under this share of its median opening is a blink.
BLINK_DEPTH = 0.7
#: Frames within which the other eye's blink makes a blink two-eyed.
PAIR_FRAMES = 3
#: Dips this few frames apart are one blink (the mesh's reading wavers about the threshold).
_MERGE_FRAMES = 2
#: Silence shorter than this in all is too little to judge the mouth by.
MIN_SILENCE_S = 0.5
#: A mouth that moves less than this share in silence of what it moves in speech rests.
RESTS_BELOW = 0.25


@dataclass(frozen=True)
class Blinks:
    """Each blink's deepest frame, per eye (the eye on the picture's left first)."""

    left: np.ndarray
    right: np.ndarray

    @property
    def one_eyed(self) -> int:
        """Blinks of one eye with no blink of the other within :data:`PAIR_FRAMES` frames."""
        return sum(_unpaired(a, b) for a, b in ((self.left, self.right), (self.right, self.left)))

    def __str__(self) -> str:
        return (f"blinks: {len(self.left)} of the eye on the picture's left, {len(self.right)} of the one on "
                f"its right ({self.one_eyed} with one eye only)")


@dataclass(frozen=True)
class SilentMouth:
    """The mouth's movement in silence against its movement in speech."""

    movement: float  # std of the aperture in silence / std in speech; nan: too little of either
    silence_s: float
    found_by: str  # the voice-activity model that found the speech
    speech: np.ndarray  # bool per frame

    def __str__(self) -> str:
        where = f"speech found by {self.found_by}"
        if not np.isfinite(self.movement):
            return (f"mouth in silence: not measured ({self.silence_s:.1f} s of silence; it needs "
                    f"{MIN_SILENCE_S} s and some speech; {where})")
        verdict = "rests" if self.movement < RESTS_BELOW else "keeps moving"
        return (f"mouth in silence: {verdict}, moving {100 * self.movement:.0f}% as much as in speech over "
                f"{self.silence_s:.1f} s of silence (under {100 * RESTS_BELOW:.0f}% rests; {where})")


def blinks(eyes_open: np.ndarray) -> Blinks:
    """Blinks in per-frame lid gaps ``(frames, 2)`` (:func:`infinitetalk.eval.sync.measure_face`)."""
    return Blinks(*(_dips(eyes_open[:, side]) for side in (0, 1)))


def silent_mouth(aperture: np.ndarray, audio: np.ndarray, fps: float) -> SilentMouth:
    """The mouth's movement in silence; ``audio`` is 16 kHz mono, ``aperture`` per frame."""
    found = speech_frames(audio, fps, len(aperture))
    ok = np.isfinite(aperture)
    quiet, talking = aperture[ok & ~found.speech], aperture[ok & found.speech]
    silence_s = len(quiet) / fps
    movement = float("nan")
    if silence_s >= MIN_SILENCE_S and len(talking) >= 3 and talking.std() > 0:
        movement = float(quiet.std() / talking.std())
    return SilentMouth(movement, silence_s, found.found_by, found.speech)


def face_behaviour(video: str | Path, audio: str | Path | None = None) -> tuple[Blinks, SilentMouth]:
    """Blinks and the mouth in silence of ``video``, against ``audio`` (default: its own track)."""
    from infinitetalk.eval.sync import measure_face
    from infinitetalk.eval.video import require_video, video_fps
    from infinitetalk.media.audio import decode_audio

    require_video(video)
    aperture, _, eyes_open = measure_face(video, lids=True)
    pcm = decode_audio(video if audio is None else audio, sample_rate=16_000)
    return blinks(eyes_open), silent_mouth(aperture, pcm, video_fps(video))


def _dips(opening: np.ndarray) -> np.ndarray:
    """The deepest frame of each run of frames under :data:`BLINK_DEPTH` of the median opening."""
    ok = np.isfinite(opening)
    if ok.sum() < 3:
        return np.zeros(0, dtype=np.int64)
    shut = ok & (np.where(ok, opening, np.inf) < BLINK_DEPTH * float(np.median(opening[ok])))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], shut.astype(np.int8), [0]])))
    for end, start in zip(edges[1::2][:-1], edges[2::2], strict=True):
        if start - end <= _MERGE_FRAMES:
            shut[end:start] = True
    edges = np.flatnonzero(np.diff(np.concatenate([[0], shut.astype(np.int8), [0]])))
    return np.array([start + int(np.nanargmin(opening[start:end])) for start, end in zip(edges[::2], edges[1::2],
                                                                                          strict=True)],
                    dtype=np.int64)


def _unpaired(these: np.ndarray, others: np.ndarray) -> int:
    if not len(others):
        return len(these)
    return int(sum(np.abs(others - frame).min() > PAIR_FRAMES for frame in these))
