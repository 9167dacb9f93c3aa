"""Blinks per eye and the mouth in silence, measured on real renders, real speech and a real wink."""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from infinitetalk.engines.preview import PreviewEngine
from infinitetalk.engines.preview.landmarks import detect_faces
from infinitetalk.engines.preview.tracks import blink_track
from infinitetalk.eval import face_behaviour
from infinitetalk.eval.behaviour import blinks, silent_mouth
from infinitetalk.eval.sync import measure_face
from infinitetalk.eval.vad import ENERGY, SILERO, energy_spans, speech_frames
from infinitetalk.eval.video import iter_frames
from infinitetalk.media.audio import decode_audio
from infinitetalk.media.video import Mp4Writer
from infinitetalk.render.render import render
from infinitetalk.schema import GenerationRequest

RATE, FPS = 16_000, 25
LEAD_S, TAIL_S = 1.0, 1.5  # silence put around the speech


def padded_speech(speech_wav: Path, noise_dbfs: float | None) -> np.ndarray:
    """The espeak sentence with silence before and after, and room noise at ``noise_dbfs`` throughout."""
    speech = decode_audio(speech_wav, sample_rate=RATE)
    pcm = np.concatenate([np.zeros(int(LEAD_S * RATE), np.float32), speech, np.zeros(int(TAIL_S * RATE), np.float32)])
    if noise_dbfs is not None:
        pcm += np.random.default_rng(0).normal(0, 10 ** (noise_dbfs / 20), len(pcm)).astype(np.float32)
    return pcm


def test_silero_finds_the_speech_and_not_the_room_noise(speech_wav: Path) -> None:
    pcm = padded_speech(speech_wav, -50.0)
    frames = int(len(pcm) / RATE * FPS)
    found = speech_frames(pcm, FPS, frames)
    assert found.found_by == SILERO
    lead, tail = int(LEAD_S * FPS) - 5, frames - int(TAIL_S * FPS) + 5  # margins: the VAD's and ours
    assert not found.speech[:lead].any() and not found.speech[tail:].any()
    assert found.speech[lead + 8 : tail - 8].mean() > 0.8  # espeak's pauses between sentences are short


def test_the_loudness_gate_stands_in_and_says_so(speech_wav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pcm = padded_speech(speech_wav, -50.0)
    spans = energy_spans(pcm)
    assert spans[0][0] >= LEAD_S - 0.05 and spans[-1][1] <= len(pcm) / RATE - TAIL_S + 0.05
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # as if not installed: importing it fails
    assert speech_frames(pcm, FPS, 100).found_by == ENERGY


def test_blinks_pair_up_and_a_lone_one_is_a_wink() -> None:
    opening = np.full((60, 2), 0.3, np.float32)
    opening[10:13] = [[0.1, 0.12], [0.05, 0.08], [0.1, 0.1]]  # a blink, the right eye a frame behind
    opening[30:32, 0] = 0.08  # the left eye alone
    opening[45, 1] = np.nan  # the mesh lost the face for a frame: no blink
    found = blinks(opening)
    assert found.left.tolist() == [11, 30] and found.right.tolist() == [11]
    assert found.one_eyed == 1


def write_wav(path: Path, pcm: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes((np.clip(pcm, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


@pytest.fixture(scope="module")
def talk_with_pauses(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path,
                     speech_wav: Path) -> tuple[Path, np.ndarray, int, np.ndarray, np.ndarray]:
    """The astronaut speaking the sentence with silence and -50 dBFS room noise around it (seed 11):
    the video, its 16 kHz speech, the seed, and the mesh's mouth aperture and lid gaps per frame."""
    folder = tmp_path_factory.mktemp("behaviour")
    pcm = padded_speech(speech_wav, -50.0)
    request = GenerationRequest.parse({"image": str(astronaut_path), "audio": str(write_wav(folder / "padded.wav", pcm)),
                                       "seed": 11})
    video = render(request, folder / "talk.mp4", engine=PreviewEngine()).path
    aperture, _, eyes_open = measure_face(video, lids=True)
    return video, pcm, 11, aperture, eyes_open


@pytest.mark.slow  # ~6 s: a 9 s render at 480p and a pass of the face mesh over it (the module's fixture)
def test_a_render_blinks_with_both_eyes_and_rests_in_silence(talk_with_pauses) -> None:
    _, pcm, seed, aperture, eyes_open = talk_with_pauses
    found, silent = blinks(eyes_open), silent_mouth(aperture, pcm, FPS)
    track = blink_track(np.random.default_rng(seed), len(aperture), FPS)
    expected = int(np.sum(np.diff(np.concatenate([[0], (track > 0).astype(np.int8)])) == 1))
    assert len(found.left) == len(found.right) == expected, (found, expected)
    assert found.one_eyed == 0
    # Measured: 0.07 (the mouth shuts and stays shut through the silence and the room noise).
    assert silent.found_by == SILERO and silent.silence_s >= 1.5
    assert silent.movement < 0.25, silent

    # Scored against speech whose silence falls where the video talks, the mouth moves in "silence".
    cut = int((LEAD_S + 1.0) * RATE)
    moved = np.concatenate([pcm[:cut], np.zeros(int(2.0 * RATE), np.float32), pcm[cut:]])[: len(pcm)]
    talking = silent_mouth(aperture, moved, FPS)
    assert talking.movement > 0.4, talking  # measured: 1.09


@pytest.mark.slow  # ~3 s beyond the module fixture: the mesh over a 3 s clip
def test_a_wink_is_caught(talk_with_pauses, tmp_path: Path) -> None:
    """In the first blink's frames the eye on the picture's right is put back as it was, open."""
    video, pcm, seed, _, _ = talk_with_pauses
    frames = list(iter_frames(video))
    track = blink_track(np.random.default_rng(seed), len(frames), FPS)
    first_blink = np.flatnonzero(track > 0)
    first_blink = first_blink[first_blink <= first_blink[0] + 10]
    corners = detect_faces(frames[0])[0].points[[263, 362]]
    half = 0.8 * float(np.linalg.norm(corners[0] - corners[1]))
    cx, cy = corners.mean(axis=0)
    x0, x1, y0, y1 = int(cx - half), int(cx + half), int(cy - 0.7 * half), int(cy + 0.7 * half)
    winked = tmp_path / "wink.mp4"
    height, width = frames[0].shape[:2]
    with Mp4Writer(winked, width=width, height=height, fps=FPS) as writer:
        for index in range(first_blink[-1] + 15):  # the clip up to just after the blink
            frame = frames[index]
            if index in first_blink:
                frame = frame.copy()
                frame[y0:y1, x0:x1] = frames[0][y0:y1, x0:x1]
            writer.write(frame)
    found, _ = face_behaviour(winked, write_wav(tmp_path / "speech.wav", pcm))
    assert (len(found.left), len(found.right), found.one_eyed) == (1, 0, 1), found
