"""The preview engine end to end through render(): lip sync, determinism, face selection, errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infinitetalk.engines.preview import PreviewEngine
from infinitetalk.errors import NoFaceDetected
from infinitetalk.eval import mouth_aperture, sync_score
from infinitetalk.eval.sync import audio_envelope, measure_face, score_series
from infinitetalk.eval.video import iter_frames
from infinitetalk.media.probe import probe
from infinitetalk.render.render import render
from infinitetalk.schema import GenerationRequest

pytestmark = pytest.mark.slow  # renders with face tracking: tens of seconds on 2 cores

ENGINE = PreviewEngine()


def make(out: Path, **fields: object):
    return render(GenerationRequest.parse(fields), out, engine=ENGINE)


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory, grace_hopper_path: Path, astronaut_path: Path,
           speech_wav: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("preview")
    return {
        name: make(out / f"{name}.mp4", image=str(portrait), audio=str(speech_wav), seed=7).path
        for name, portrait in (("grace", grace_hopper_path), ("astronaut", astronaut_path))
    }


#: Lip sync r (best lag) per portrait: measured 0.936 (grace) and 0.840 (astronaut) at seed 7, at least the
#: 0.933 and 0.837 of the code before issue 24's first round; the floor is that less 0.04 of seed-to-seed spread.
SYNC_FLOOR = {"grace": 0.89, "astronaut": 0.80}


@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_mouth_follows_the_speech(videos: dict[str, Path], slow_speech_wav: Path, other_speech_wav: Path,
                                  name: str) -> None:
    own = sync_score(videos[name])
    assert own.r_best >= SYNC_FLOOR[name] and abs(own.best_lag) <= 2, own
    assert own.r_box >= 0.5, own  # the landmark-free measure agrees
    # Against other sentences the score collapses. Two espeak sentences share some rhythm, so a
    # single control can reach ~0.2 by chance: one must stay under 0.2, the other under 0.3.
    controls = sorted(sync_score(videos[name], wrong).r_lag0 for wrong in (slow_speech_wav, other_speech_wav))
    assert controls[0] < 0.2 and controls[1] < 0.3, controls


#: A sentence whose loudness shares no rhythm with "hello" (their envelopes' r stays under 0.1 at every
#: lag the score searches): the control that a mouth following "hello" must score about 0 against.
UNRELATED = ("Lemons and limes are sour, but oranges are usually sweet.", "en-us", "140")


@pytest.fixture(scope="module")
def wrong_speech(tmp_path_factory: pytest.TempPathFactory, slow_speech_wav: Path,
                 other_speech_wav: Path) -> dict[str, Path]:
    lemons = tmp_path_factory.mktemp("unrelated") / "lemons.wav"
    text, voice, speed = UNRELATED
    subprocess.run(["espeak-ng", "-v", voice, "-s", speed, "-w", str(lemons), text], check=True)
    return {"ships": slow_speech_wav, "weather": other_speech_wav, "lemons": lemons}


@pytest.fixture(scope="module")
def mouths(videos: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each video's aperture and mouth-box darkness, measured once for every control."""
    return {name: measure_face(path)[:2] for name, path in videos.items()}


def _shared_rhythm(speech: Path, wrong: Path, frames: int):
    """The score a mouth that followed ``speech`` perfectly would get against ``wrong``: the two envelopes' r."""
    envelope = audio_envelope(speech, 25, frames)
    return score_series(envelope, envelope, 25, wrong)


@pytest.mark.parametrize("name", ["grace", "astronaut"])
@pytest.mark.parametrize("wrong", ["ships", "weather"])
def test_no_correlation_of_its_own_with_other_speech(mouths: dict, wrong_speech: dict[str, Path], speech_wav: Path,
                                                      name: str, wrong: str) -> None:
    # Two espeak sentences share some rhythm ("weather" and "hello" envelopes: r=0.23 at lag 0; "ships":
    # 0.20 at lag +3), and a mouth that follows "hello" inherits it. What the engine must not do is add
    # any of its own (a periodic motion, a mouth moved by non-speech energy, a lag from smoothing).
    aperture, darkness = mouths[name]
    shared = _shared_rhythm(speech_wav, wrong_speech[wrong], len(aperture))
    mouth = score_series(aperture, darkness, 25, wrong_speech[wrong])
    assert mouth.r_lag0 <= max(shared.r_lag0, 0.0) + 0.05, (mouth, shared)
    assert mouth.r_best <= shared.r_best + 0.05, (mouth, shared)


@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_unrelated_speech_scores_about_zero(mouths: dict, wrong_speech: dict[str, Path], speech_wav: Path,
                                           name: str) -> None:
    aperture, darkness = mouths[name]
    shared = _shared_rhythm(speech_wav, wrong_speech["lemons"], len(aperture))
    assert abs(shared.r_lag0) < 0.1 and shared.r_best < 0.1, shared  # the control shares nothing with the speech
    mouth = score_series(aperture, darkness, 25, wrong_speech["lemons"])
    assert mouth.r_lag0 < 0.2 and mouth.r_best < 0.2, mouth


def eye_apertures(video: Path) -> np.ndarray:
    """(frames, 2): each eye's lid gap over its corner-to-corner width, from the engine's own face mesh."""
    import mediapipe as mp

    from infinitetalk.engines.preview import landmarks as lm

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as mesh:
        for frame in iter_frames(video):
            pts = lm.faces_in(mesh, frame)[0].points
            out.append([np.linalg.norm(pts[up] - pts[lo]) / np.linalg.norm(pts[outer] - pts[inner])
                        for outer, inner, up, lo in (lm.RIGHT_EYE, lm.LEFT_EYE)])
    return np.array(out)


@pytest.mark.parametrize("name", ["grace", "astronaut"])
def test_blinks_close_both_eyes(videos: dict[str, Path], name: str) -> None:
    """On the engine's blink frames both eyes close, about as far as each other: a blink, not a wink."""
    from infinitetalk.engines.preview.tracks import blink_track

    eyes = eye_apertures(videos[name])
    relative = eyes / np.median(eyes, axis=0)  # 1: as open as usual
    # The engine's own blink timing for these videos: the first draws of its generator, seeded 7.
    shut = blink_track(np.random.default_rng(7), len(eyes), 25) >= 0.8
    assert shut.any()  # 6 s of video: at least one blink
    closed = 1 - relative[shut].mean(axis=0)  # how far each eye closed over the blinks' deepest frames
    # Measured: 0.3-0.6 for each eye (grace's glasses hide some of it); a wink left the other at under 0.07.
    assert closed.min() > 0.15, closed
    assert closed.min() > 0.33 * closed.max(), closed


def test_output_streams_size_and_duration(videos: dict[str, Path], speech_wav: Path) -> None:
    from infinitetalk.media.audio import probe_duration

    info = probe(videos["astronaut"])
    video, audio = info.streams
    assert (video.codec, video.width, video.height, video.fps) == ("h264", 640, 640, 25.0)
    assert (audio.codec, audio.sample_rate) == ("aac", 44_100)
    assert abs(video.frames / 25 - probe_duration(speech_wav)) <= 1 / 25


def test_same_seed_same_frames(tmp_path: Path, astronaut_path: Path, short_speech_wav: Path) -> None:
    runs = [make(tmp_path / f"{i}.mp4", image=str(astronaut_path), audio=str(short_speech_wav), seed=s).path
            for i, s in enumerate((3, 3, 4))]
    a, b, c = ([f for f in iter_frames(p)] for p in runs)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_small_face_is_found(tmp_path: Path, astronaut_path: Path, short_speech_wav: Path) -> None:
    """The astronaut shrunk and placed on a wide grey canvas (her face ~50 px in the output): still found."""
    small = Image.open(astronaut_path).resize((400, 400))
    canvas = Image.new("RGB", (1280, 720), (120, 120, 120))
    canvas.paste(small, (860, 300))
    canvas.save(tmp_path / "small.png")
    result = make(tmp_path / "small.mp4", image=str(tmp_path / "small.png"), audio=str(short_speech_wav), seed=1)
    frames = list(iter_frames(result.path))
    moved = np.abs(frames[0].astype(int) - frames[len(frames) // 2].astype(int)).sum(axis=2)
    ys, xs = np.nonzero(moved > 30)
    assert len(xs) > 20  # something moved ...
    scale = result.width / 1280
    assert xs.min() >= 860 * scale - 40  # ... and only around the small face


def test_faceless_picture_is_refused_and_leaves_nothing(tmp_path: Path, noise_png: Path,
                                                        short_speech_wav: Path) -> None:
    with pytest.raises(NoFaceDetected) as info:
        make(tmp_path / "out.mp4", image=str(noise_png), audio=str(short_speech_wav))
    assert info.value.code == "no_face_detected" and "clearly visible" in info.value.message
    assert list(tmp_path.iterdir()) == []


def test_mask_picks_the_face_to_animate(tmp_path: Path, grace_hopper_path: Path, astronaut_path: Path,
                                        speech_wav: Path) -> None:
    """Two faces side by side; the mask covers the right one: only it moves."""
    left = Image.open(grace_hopper_path).resize((320, 375))
    right = Image.open(astronaut_path).resize((375, 375))
    pair = Image.new("RGB", (700, 375))
    pair.paste(left, (0, 0))
    pair.paste(right, (325, 0))
    pair.save(tmp_path / "pair.png")
    mask = np.zeros((375, 700), np.uint8)
    mask[:, 350:] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = make(tmp_path / "pair.mp4", image=str(tmp_path / "pair.png"), audio=str(speech_wav),
                  mask=str(tmp_path / "mask.png"), seed=2)
    frames = np.stack(list(iter_frames(result.path))).astype(np.float32)
    half = result.width // 2
    change = np.abs(frames - frames[:1]).mean(axis=(0, 3))
    assert change[:, half + 20 :].mean() > 5 * change[:, : half - 20].mean()
    assert np.nanvar(mouth_aperture(result.path)) > 0  # the animated face speaks
