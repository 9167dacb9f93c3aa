"""Where the speech is: voice activity per video frame, for measuring the mouth in silence.

Silero VAD (the ``silero-vad`` package, ``pip install 'infinitetalk[eval]'``) ships its weights in
its wheel and runs offline on torch's CPU build: it tells speech from breath, room noise and music
beds. Without it, a plain loudness gate stands in (:func:`energy_speech`), and every result says
which one found the speech: the gate takes loud noise for speech and quiet speech for silence.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
SILERO = "silero-vad"
ENERGY = "a loudness gate (silero-vad is not installed: pip install 'infinitetalk[eval]')"
#: Speech this close to a frame counts for it: lips part just before a word and close just after.
MARGIN_S = 0.12
#: The loudness gate: speech is within this many dB of the clip's loud parts and above an absolute floor.
_GATE_BELOW_LOUD_DB, _FLOOR_DBFS = 30.0, -45.0


@dataclass(frozen=True)
class SpeechFrames:
    """Per video frame: True where someone speaks (within :data:`MARGIN_S`); ``found_by`` names the VAD."""

    speech: np.ndarray  # bool (num_frames,)
    found_by: str


def speech_frames(audio: np.ndarray, fps: float, num_frames: int) -> SpeechFrames:
    """Voice activity of 16 kHz mono ``audio`` per video frame."""
    audio = np.asarray(audio, dtype=np.float32)
    try:
        spans, found_by = silero_spans(audio), SILERO
    except ImportError:
        spans, found_by = energy_spans(audio), ENERGY
    return SpeechFrames(_frames_of(spans, fps, num_frames), found_by)


def silero_spans(audio: np.ndarray) -> list[tuple[float, float]]:
    """(start, end) seconds of speech by Silero VAD; ImportError when it (or torch) is not installed."""
    import torch

    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad

        # One thread, as silero sets on import: the model is small, and more threads only spin (on a
        # busy 2-core machine 9 s of audio took 11 s of CPU with two). Put back after, for the whole
        # process's sake: a neural render after it would crawl on one.
        torch.set_num_threads(1)
        # The model keeps its recurrent state between calls: one caller at a time.
        with _model_lock, torch.inference_mode():
            model = _silero_model(load_silero_vad)
            found = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio)), model,
                                          sampling_rate=SAMPLE_RATE)
    finally:
        torch.set_num_threads(threads)
    return [(span["start"] / SAMPLE_RATE, span["end"] / SAMPLE_RATE) for span in found]


_model = None
_model_lock = threading.Lock()


def _silero_model(load: Callable[[], object]) -> object:
    """Silero's TorchScript model, loaded once per process."""
    global _model
    if _model is None:
        with warnings.catch_warnings():
            # silero-vad 6.2 loads its TorchScript file with torch.jit.load, which torch 2.13 marks
            # deprecated; nothing of ours to change, and the load works.
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            _model = load()
    return _model


def energy_spans(audio: np.ndarray, hop_s: float = 0.02) -> list[tuple[float, float]]:
    """(start, end) seconds where 20 ms windows are loud: within 30 dB of the clip's loud parts, above -45 dBFS."""
    hop = int(hop_s * SAMPLE_RATE)
    count = len(audio) // hop
    if count == 0:
        return []
    rms = np.sqrt(np.mean(audio[: count * hop].reshape(count, hop) ** 2, axis=1) + 1e-12)
    db = 20 * np.log10(rms)
    loud = float(np.percentile(db, 95))
    on = db > max(loud - _GATE_BELOW_LOUD_DB, _FLOOR_DBFS)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    return [(start * hop_s, end * hop_s) for start, end in zip(edges[::2], edges[1::2], strict=True)]


def _frames_of(spans: list[tuple[float, float]], fps: float, num_frames: int) -> np.ndarray:
    """Frames whose time span comes within :data:`MARGIN_S` of a speech span."""
    speech = np.zeros(num_frames, dtype=bool)
    starts = np.arange(num_frames) / fps
    for start, end in spans:
        speech |= (starts + 1 / fps > start - MARGIN_S) & (starts < end + MARGIN_S)
    return speech
