"""Lip sync, measured: does the mouth open when the speech is loud?

Two per-frame mouth signals are compared with the speech's per-frame RMS envelope:

- aperture: mediapipe face-mesh inner-lip gap (landmarks 13-14) divided by the distance
  between the eye centres, so it does not depend on face size;
- darkness: the share of dark pixels in a mouth box fixed once for the whole video (placed
  from the first frame's landmarks, then pixels only). It needs no per-frame landmarks, so
  it still works where the mesh would be fooled by a painted mouth.

Both series first lose their slow trend (a centred one-second moving average is taken
off), so r measures whether the mouth moves with the syllables, not merely whether two
clips share a stretch of silence. Pearson r is reported at lag 0 and at the best lag within
+-5 frames (a positive lag means the mouth follows the sound). A generated video should score r >= 0.5 near lag 0 against
its own speech and about 0 against another sentence.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infinitetalk.eval.video import iter_frames, require_video, video_fps

MAX_LAG = 5
_UPPER_LIP, _LOWER_LIP = 13, 14
_EYES = ((33, 133), (263, 362))
#: Per eye (the one on the picture's left first): outer corner, inner corner, upper lid, lower lid.
_LIDS = ((33, 133, 159, 145), (263, 362, 386, 374))
_MOUTH = (61, 291, 0, 17, 13, 14, 78, 308)
_lock = threading.Lock()


@dataclass(frozen=True)
class SyncScore:
    r_lag0: float  # Pearson r of aperture and envelope at lag 0
    best_lag: int  # frames, + = mouth after sound
    r_best: float  # r at best_lag
    r_box: float  # landmark-free darkness measure, best r within +-MAX_LAG
    box_lag: int

    def __str__(self) -> str:
        # lag 0 is always measured; the best lag is named only where it is another one
        best = (f" (the best within +-{MAX_LAG} frames)" if self.best_lag == 0
                else f", r={_r(self.r_best)} at lag {self.best_lag:+d}")
        return (
            f"aperture r={_r(self.r_lag0)} at lag 0{best}; "
            f"mouth-box darkness r={_r(self.r_box)} at lag {self.box_lag:+d}".replace("lag +0", "lag 0")
        )

    @property
    def measured(self) -> bool:
        """Whether a face was found in enough frames to score at all."""
        return bool(np.isfinite(self.r_best))

    def reading(self) -> str:
        """What the numbers mean, for a person: the thresholds of the module's docstring."""
        if not self.measured:
            return "not measured: no face was found in enough frames to follow the mouth"
        r, lag = self.r_best, self.best_lag
        if r >= GOOD_R and abs(lag) <= 2:
            verdict = "good: the mouth opens with the speech"
        elif r >= GOOD_R:
            verdict = f"in sync, but {abs(lag)} frames {'late' if lag > 0 else 'early'}"
        elif r >= WEAK_R:
            verdict = "weak: the mouth follows the speech only loosely"
        else:
            verdict = "none: the mouth does not follow this speech"
        return (f"lip sync {verdict} (r={r:.2f}; {GOOD_R} or more near lag 0 is good, about 0 is none; "
                "the box measure should agree)")


#: Reading of r, as measured on our own videos: >= 0.5 against their own speech, about 0 against another.
GOOD_R, WEAK_R = 0.5, 0.2


def _r(value: float) -> str:
    """r for display; a measure that had nothing to measure says so instead of nan or -inf."""
    return f"{value:.3f}" if np.isfinite(value) else "n/a"


def audio_envelope(audio: str | Path | np.ndarray, fps: float, num_frames: int, sample_rate: int = 16_000) -> np.ndarray:
    """RMS of the audio over each video frame's time span; a path is decoded to 16 kHz mono."""
    if not isinstance(audio, np.ndarray):
        from infinitetalk.media.audio import decode_audio

        audio, sample_rate = decode_audio(audio, sample_rate=16_000), 16_000
    audio = np.asarray(audio, dtype=np.float32)
    edges = np.round(np.arange(num_frames + 1) * sample_rate / fps).astype(int)
    out = np.zeros(num_frames, dtype=np.float32)
    for i in range(num_frames):
        seg = audio[edges[i] : edges[i + 1]]
        out[i] = float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0
    return out


#: (x0, y0, x1, y1) as shares of the frame: measure only the face inside (e.g. one of two speakers).
Region = tuple[float, float, float, float]


def mouth_aperture(video: str | Path, region: Region | None = None) -> np.ndarray:
    """Inner-lip gap over eye distance per frame (NaN where no face is found)."""
    return _measure(video, region)[0]


def mouth_box_darkness(video: str | Path, region: Region | None = None) -> np.ndarray:
    """Share of dark pixels in a fixed mouth box per frame (NaN before a face is first seen)."""
    return _measure(video, region)[1]


def sync_score(video: str | Path, audio: str | Path | np.ndarray | None = None,
               region: Region | None = None) -> SyncScore:
    """Score ``video`` against ``audio`` (a path or 16 kHz mono samples; default: the video's own track).

    ``region``: score the face inside this part of the frame only.
    """
    require_video(video)  # before the face mesh loads, and before a picture is blamed for having no speech
    aperture, darkness = _measure(video, region)
    return score_series(aperture, darkness, video_fps(video), video if audio is None else audio)


def score_series(aperture: np.ndarray, darkness: np.ndarray, fps: float,
                 audio: str | Path | np.ndarray) -> SyncScore:
    """:func:`sync_score` of series already measured (:func:`measure_face`)."""
    envelope = _detrend(audio_envelope(audio, fps, len(aperture)), fps)
    aperture, darkness = _detrend(aperture, fps), _detrend(darkness, fps)
    r0 = _pearson(aperture, envelope)
    lag, r_best = _best_lag(aperture, envelope)
    box_lag, r_box = _best_lag(darkness, envelope)
    return SyncScore(r_lag0=r0, best_lag=lag, r_best=r_best, r_box=r_box, box_lag=box_lag)


def _measure(video: str | Path, region: Region | None = None) -> tuple[np.ndarray, np.ndarray]:
    aperture, darkness, _ = measure_face(video, region)
    return aperture, darkness


def measure_face(video: str | Path, region: Region | None = None, *,
                 lids: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame, in one pass of the face mesh: mouth aperture, mouth-box darkness, and each eye's
    lid gap over its width (frames, 2; the eye on the picture's left first). NaN where no face is found.

    ``lids``: run the mesh with its refined eye and lip points. Without them, the tracking mesh
    smooths a blink's closed lids away (a blink read 0.7 of the open gap instead of 0.2); the lip
    sync scores keep the plain mesh, so their numbers stay comparable with earlier ones.
    """
    import mediapipe as mp

    aperture: list[float] = []
    darkness: list[float] = []
    eyes_open: list[tuple[float, float]] = []
    box: tuple[int, int, int, int] | None = None
    threshold = 0.0
    with _lock, mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=lids) as mesh:
        for frame in iter_frames(video):
            if region is not None:
                fh, fw = frame.shape[:2]
                frame = np.ascontiguousarray(
                    frame[int(region[1] * fh) : int(region[3] * fh), int(region[0] * fw) : int(region[2] * fw)]
                )
            h, w = frame.shape[:2]
            result = mesh.process(frame)
            pts = None
            if result.multi_face_landmarks:
                lms = result.multi_face_landmarks[0].landmark
                pts = np.array([(p.x * w, p.y * h) for p in lms], dtype=np.float32)
            if pts is None:
                aperture.append(np.nan)
                eyes_open.append((np.nan, np.nan))
            else:
                eyes = [pts[list(e)].mean(axis=0) for e in _EYES]
                gap = np.linalg.norm(pts[_LOWER_LIP] - pts[_UPPER_LIP])
                aperture.append(float(gap / max(np.linalg.norm(eyes[0] - eyes[1]), 1e-6)))
                eyes_open.append(tuple(  # type: ignore[arg-type]
                    float(np.linalg.norm(pts[up] - pts[lo]) / max(np.linalg.norm(pts[a] - pts[b]), 1e-6))
                    for a, b, up, lo in _LIDS))
            gray = frame @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            if box is None and pts is not None:
                box, threshold = _mouth_box(pts, gray)
            if box is None:
                darkness.append(np.nan)
            else:
                x0, y0, x1, y1 = box
                darkness.append(float((gray[y0:y1, x0:x1] < threshold).mean()))
    return (np.array(aperture, dtype=np.float32), np.array(darkness, dtype=np.float32),
            np.array(eyes_open, dtype=np.float32).reshape(-1, 2))


def _mouth_box(pts: np.ndarray, gray: np.ndarray) -> tuple[tuple[int, int, int, int], float]:
    """A box around the lips, reaching down to cover a dropped jaw, and a 'dark' threshold for it."""
    m = pts[list(_MOUTH)]
    x0, y0 = m.min(axis=0)
    x1, y1 = m.max(axis=0)
    mw = x1 - x0
    box = (int(x0 + 0.1 * mw), int(y0), int(np.ceil(x1 - 0.1 * mw)), int(np.ceil(y1 + 0.35 * mw)))
    region = gray[box[1] : box[3], box[0] : box[2]]
    # Darker than the lips and skin around them: half their median brightness.
    return box, float(np.median(region) * 0.5) if region.size else 0.0


def _detrend(signal: np.ndarray, fps: float) -> np.ndarray:
    """``signal`` minus its centred moving average over one second (NaNs ignored, and kept)."""
    width = max(3, int(round(fps)) | 1)
    ok = np.isfinite(signal)
    kernel = np.ones(width, np.float32)
    total = np.convolve(np.where(ok, signal, 0.0), kernel, mode="same")
    count = np.convolve(ok.astype(np.float32), kernel, mode="same")
    return np.where(ok, signal - total / np.maximum(count, 1), np.nan).astype(np.float32)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    x, y = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def _best_lag(signal: np.ndarray, envelope: np.ndarray) -> tuple[int, float]:
    """The lag in [-MAX_LAG, MAX_LAG] with the highest r; signal[t] is compared with envelope[t - lag]."""
    best = (0, -np.inf)
    n = len(signal)
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        if lag >= 0:
            r = _pearson(signal[lag:], envelope[: n - lag])
        else:
            r = _pearson(signal[:lag], envelope[-lag:])
        if np.isfinite(r) and r > best[1]:
            best = (lag, r)
    return best[0], float(best[1])
