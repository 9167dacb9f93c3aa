"""Audio decode and duration probing on real files in several formats."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from infinitetalk.errors import InputTooLarge, InvalidRequest
from infinitetalk.media.audio import decode_audio, probe_duration


def transcode(src: Path, dest: Path, codec: str, container: str) -> Path:
    """Re-encode ``src`` with PyAV (the machine has no ffmpeg binary)."""
    rate = 48_000 if codec == "libopus" else 44_100  # Opus only runs at 48 kHz and its divisors
    pcm = decode_audio(src, sample_rate=rate)
    with av.open(str(dest), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        for i in range(0, len(pcm), 4096):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 4096], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dest


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.mark.parametrize(("codec", "container", "suffix"), [("libmp3lame", "mp3", "mp3"), ("aac", "mp4", "m4a"),
                                                           ("flac", "flac", "flac"), ("libopus", "ogg", "ogg")])
def test_formats_decode_to_the_same_duration(speech_wav: Path, tmp_path: Path, codec: str, container: str,
                                             suffix: str) -> None:
    expected = probe_duration(speech_wav)
    encoded = transcode(speech_wav, tmp_path / f"speech.{suffix}", codec, container)
    assert probe_duration(encoded) == pytest.approx(expected, abs=0.06)  # codec priming/padding only


def test_decode_resamples_to_mono_float(speech_wav: Path) -> None:
    with wave.open(str(speech_wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    pcm = decode_audio(speech_wav, sample_rate=16_000)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert len(pcm) == pytest.approx(seconds * 16_000, abs=32)
    assert 0.05 < np.abs(pcm).max() <= 1.0


def test_duration_comes_from_the_samples_not_the_header(speech_wav: Path, tmp_path: Path) -> None:
    """A truncated upload keeps a header that promises more; the probe reports what is there."""
    data = speech_wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    assert probe_duration(cut) == pytest.approx(probe_duration(speech_wav) / 2, abs=0.05)


def test_silence_is_valid(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silence.wav", np.zeros(16_000 * 2), 16_000)
    assert probe_duration(path) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("content", "code"),
    [(b"", "audio_unreadable"), (b"this is not audio at all" * 100, "audio_unreadable")],
)
def test_unreadable_files(tmp_path: Path, content: bytes, code: str) -> None:
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(InvalidRequest) as info:
        decode_audio(path)
    assert info.value.code == code and info.value.field == "audio"
    assert "MP3, WAV" in info.value.message


def test_header_only_wav_is_empty(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "empty.wav", np.zeros(0), 16_000)
    with pytest.raises(InvalidRequest) as info:
        decode_audio(path)
    assert info.value.code in {"audio_empty", "audio_unreadable"}


def test_file_without_audio_stream(grace_hopper_path: Path) -> None:
    with pytest.raises(InvalidRequest) as info:
        decode_audio(grace_hopper_path)
    assert info.value.code == "audio_unreadable"


def test_too_long_audio_is_refused(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", np.zeros(8_000 * 601), 8_000)
    with pytest.raises(InputTooLarge) as info:
        probe_duration(path)
    assert info.value.code == "audio_too_long" and "600 s" in info.value.message


@pytest.mark.parametrize("seconds", [601, 750])
def test_too_long_audio_names_its_own_length(seconds: int, tmp_path: Path) -> None:
    # decoding stops just past the limit, so the message must not say "at least 600 s" of a longer file
    path = write_wav(tmp_path / "long.wav", np.zeros(8_000 * seconds), 8_000)
    with pytest.raises(InputTooLarge) as info:
        probe_duration(path)
    assert f"about {seconds} s long, longer than the 600 s limit" in info.value.message
    assert "at least" not in info.value.message


def test_unreadable_audio_is_worded_without_our_file_names(tmp_path: Path) -> None:
    # a server names fetched inputs itself; FFmpeg puts that path in its error text
    folder = tmp_path / "inputs" / "task_0123456789"
    folder.mkdir(parents=True)
    path = folder / "audio-xc7txxg9"
    path.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(InvalidRequest) as info:
        decode_audio(path, field="audio.1")
    message = info.value.message
    assert message.startswith("audio.1: could not read the audio (the decoder said: "), message
    assert "xc7txxg9" not in message and "task_" not in message and "''" not in message


def test_a_wav_is_measured_by_its_samples_not_its_header(speech_wav: Path, tmp_path: Path) -> None:
    """The PCM WAV fast path (no FFmpeg) bills what the decoder would: a cut file counts what is left."""
    from infinitetalk.media.audio import decode_audio, probe_duration

    cut = tmp_path / "cut.wav"
    data = speech_wav.read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # the header still claims the whole length
    for path in (speech_wav, cut):
        decoded = len(decode_audio(path, sample_rate=16_000)) / 16_000
        assert abs(probe_duration(path) - decoded) < 1e-3
    assert probe_duration(cut) < probe_duration(speech_wav) * 0.6
