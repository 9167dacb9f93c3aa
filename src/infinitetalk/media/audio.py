"""Audio: decode anything PyAV reads into float32 PCM, and probe the real duration.

Durations come from decoding every packet, never from the container header: headers lie
(VBR MP3 without a Xing frame, truncated uploads), and billing depends on the number.
"""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.schema import limits


def _unreadable(why: str, field: str) -> InvalidRequest:
    # The file's name is left out: on a server it is our temporary name, which tells the caller nothing.
    return InvalidRequest(
        f"{field}: could not read the audio ({why}); send speech as MP3, WAV, M4A/AAC, OGG or FLAC",
        code="audio_unreadable",
        field=field,
    )


def decode_audio(
    path: str | Path,
    *,
    sample_rate: int = 16_000,
    channels: int = 1,
    field: str = "audio",
    max_seconds: float = limits.MAX_AUDIO_SECONDS,
) -> np.ndarray:
    """Decode the first audio stream to float32 in [-1, 1], resampled.

    Returns shape (samples,) for mono, (samples, channels) otherwise. Raises InvalidRequest
    (``audio_unreadable``, ``audio_empty``) or InputTooLarge (``audio_too_long``).
    """
    path = Path(path)
    layout = "mono" if channels == 1 else "stereo"
    resampler = av.AudioResampler(format="flt", layout=layout, rate=sample_rate)
    chunks: list[np.ndarray] = []
    total = 0
    limit = int(max_seconds * sample_rate) + 1
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise _unreadable("the file has no audio stream", field)
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, channels))
                    total += out.samples
                if total > limit:
                    raise _too_long(_declared_seconds(container), field)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels))
                total += out.samples
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise _unreadable(_reason(exc), field) from None
    if total > limit:
        raise _too_long(None, field)
    if total == 0:
        raise InvalidRequest(
            f"{field}: the file holds no audio samples; send a file with at least a moment of sound (silence is fine)",
            code="audio_empty",
            field=field,
        )
    pcm = np.concatenate(chunks, axis=0).astype(np.float32, copy=False)
    return pcm[:, 0].copy() if channels == 1 else pcm


def probe_duration(path: str | Path, *, field: str = "audio") -> float:
    """Seconds of audio in ``path``, measured by decoding it all (a plain PCM WAV: by reading its samples)."""
    seconds = _pcm_wav_seconds(path)
    if seconds is not None:
        if seconds > limits.MAX_AUDIO_SECONDS:
            raise _too_long(seconds, field)
        return seconds
    pcm = decode_audio(path, sample_rate=16_000, field=field)
    return len(pcm) / 16_000


def _pcm_wav_seconds(path: str | Path) -> float | None:
    """A PCM WAV's length from the samples really in the file (not the header's claim), read with Python's
    wave module: FFmpeg spends about 5 ms just opening a 16-bit WAV, a third of a submit's CPU. None for any
    other file, or one with no samples, which the decoder then measures (and words the error for)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError, ValueError):
        return None
    frames = len(data) // (width * channels) if width and channels else 0
    return frames / rate if rate > 0 and frames > 0 else None


def _declared_seconds(container: av.container.InputContainer) -> float | None:
    """The length the file's header claims; only ever shown to the caller, never billed."""
    return container.duration / av.time_base if container.duration and container.duration > 0 else None


def _too_long(declared: float | None, field: str) -> InputTooLarge:
    # Decoding stops just past the limit, so the samples seen say nothing of the real length: quote the
    # header's length when it is past the limit too, else no number at all.
    length = (f"about {declared:.0f} s long, " if declared and declared > limits.MAX_AUDIO_SECONDS + 0.5
              else "")
    return InputTooLarge(
        f"{field}: the audio is {length}longer than the {limits.MAX_AUDIO_SECONDS:.0f} s limit; "
        "split it and make several videos",
        code="audio_too_long",
        field=field,
    )


def _reason(exc: Exception) -> str:
    """What the decoder found wrong, in its words, without the file name FFmpeg puts in its message."""
    if isinstance(exc, av.error.FFmpegError) and exc.strerror:
        return f"the decoder said: {exc.strerror}"
    return "the data is damaged or not audio"
