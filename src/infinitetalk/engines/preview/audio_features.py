"""Per-video-frame speech features that drive the mouth: openness and lip shape.

Openness comes from speech-band (300-3400 Hz) energy: loud voiced sound means an open
jaw. A noise gate keeps the mouth shut in pauses and breaths; percentiles (not the
maximum) normalise it, so one shout does not leave the rest of the clip mumbling. Lips
open fast and close a little slower, as real ones do.

Shape comes from the spectrum's centroid within the speech band: dark vowels (oo, oh, w)
sit low and are said with rounded lips, bright ones (ee, s, i) sit high and spread them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infinitetalk.engines.base import AUDIO_SAMPLE_RATE

_BAND = (300.0, 3400.0)
_GATE_DB = 6.0  # above the noise floor before the mouth moves at all
_RANGE_DB = 24.0  # from closed to fully open


@dataclass(frozen=True)
class SpeechFeatures:
    """One value per video frame."""

    openness: np.ndarray  # [0, 1]: jaw and lips apart
    shape: np.ndarray  # [-1, 1]: -1 rounded, +1 spread
    energy: np.ndarray  # [0, 1]: slow speech energy, for head nods


def speech_features(audio: np.ndarray, fps: int, num_frames: int) -> SpeechFeatures:
    """Features for ``num_frames`` frames of mono float32 audio at 16 kHz."""
    hop = AUDIO_SAMPLE_RATE / fps
    n_fft = 1 << int(np.ceil(np.log2(1.5 * hop)))  # a window of one to two frames
    spec = _frame_spectra(audio, hop, n_fft, num_frames)
    freqs = np.fft.rfftfreq(n_fft, 1 / AUDIO_SAMPLE_RATE)
    band = (freqs >= _BAND[0]) & (freqs <= _BAND[1])
    power = spec[:, band]
    band_power = power.sum(axis=1)
    db = 10 * np.log10(band_power + 1e-10)

    openness = _normalise_db(db)
    openness = _attack_release(openness, attack=0.75, release=0.45)

    centroid = (power * freqs[band]).sum(axis=1) / (band_power + 1e-10)
    voiced = openness > 0.05
    shape = np.zeros(num_frames, dtype=np.float32)
    if voiced.sum() >= 3:
        mid = np.median(centroid[voiced])
        spread = np.percentile(centroid[voiced], 90) - np.percentile(centroid[voiced], 10) + 1.0
        shape = np.tanh(2.5 * (centroid - mid) / spread).astype(np.float32)
        shape *= np.clip(openness / 0.3, 0, 1)  # shape only shows while the mouth moves
    shape = _attack_release(shape, attack=0.6, release=0.6)

    energy = _attack_release(openness, attack=0.08, release=0.05)
    return SpeechFeatures(openness.astype(np.float32), np.clip(shape, -1, 1).astype(np.float32), energy)


def _frame_spectra(audio: np.ndarray, hop: float, n_fft: int, num_frames: int) -> np.ndarray:
    """Power spectra of Hann windows centred on each video frame's middle."""
    padded = np.pad(audio.astype(np.float32), (n_fft, n_fft))
    centres = (np.arange(num_frames) + 0.5) * hop + n_fft
    starts = (centres - n_fft / 2).astype(np.int64)
    idx = starts[:, None] + np.arange(n_fft)[None, :]
    idx = np.clip(idx, 0, len(padded) - 1)
    frames = padded[idx] * np.hanning(n_fft).astype(np.float32)
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


def _normalise_db(db: np.ndarray) -> np.ndarray:
    floor = np.percentile(db, 10)
    loud = np.percentile(db, 97)
    if loud - floor < _GATE_DB + 3:  # silence or steady noise: nothing to say
        return np.zeros_like(db)
    # Syllables swing about 20-25 dB; map that swing (not the whole range down to digital
    # silence) onto closed..open, and never open on the noise floor.
    low = max(floor + _GATE_DB, loud - _RANGE_DB)
    return np.clip((db - low) / (loud - low), 0, 1)


def _attack_release(x: np.ndarray, *, attack: float, release: float) -> np.ndarray:
    """One-pole smoothing that follows rises with ``attack`` and falls with ``release`` (0-1)."""
    out = np.empty(len(x), dtype=np.float32)
    y = float(x[0]) if len(x) else 0.0
    for i, v in enumerate(x):
        k = attack if abs(v) > abs(y) else release
        y += k * (float(v) - y)
        out[i] = y
    return out
