"""The lip-sync measure's arithmetic, and the eval CLI on a real video."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from infinitetalk.eval import audio_envelope
from infinitetalk.eval.sheet import STRIP_HEIGHT
from infinitetalk.eval.sync import _best_lag, _detrend, _pearson


def test_envelope_is_rms_per_frame() -> None:
    audio = np.concatenate([np.zeros(640), np.full(640, 0.5), -np.full(640, 0.25)]).astype(np.float32)
    assert audio_envelope(audio, 25, 3).tolist() == pytest.approx([0.0, 0.5, 0.25])


def test_best_lag_finds_a_delay() -> None:
    rng = np.random.default_rng(0)
    sound = rng.normal(size=300).astype(np.float32)
    mouth = np.roll(sound, 3)  # the mouth follows the sound by 3 frames
    lag, r = _best_lag(mouth, sound)
    assert lag == 3 and r > 0.95
    assert abs(_pearson(mouth, sound)) < 0.2


def test_detrend_removes_slow_change_and_keeps_gaps() -> None:
    t = np.arange(200, dtype=np.float32)
    slow = t / 10
    fast = np.sin(t * 2 * np.pi / 5)
    signal = slow + fast
    signal[50] = np.nan
    out = _detrend(signal, 25)
    assert np.isnan(out[50])
    inner = slice(20, 180)
    assert _pearson(out[inner], fast[inner]) > 0.95


@pytest.mark.integration  # the CLI as a subprocess
def test_eval_cli_scores_and_draws(tmp_path: Path, astronaut_path: Path, short_speech_wav: Path) -> None:
    video = tmp_path / "talk.mp4"
    cli = [sys.executable, "-m", "infinitetalk.cli"]
    made = subprocess.run([*cli, "generate", "--image", str(astronaut_path), "--audio", str(short_speech_wav),
                           "--seed", "1", "-q", "-o", str(video)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    score = subprocess.run([*cli, "eval", "sync", str(video)], capture_output=True, text=True)
    assert score.returncode == 0 and score.stdout.startswith("aperture r="), score.stderr
    lines = score.stdout.splitlines()
    assert lines[2].startswith("blinks: ") and lines[3].startswith("mouth in silence: "), lines
    sheet = tmp_path / "sheet.png"
    drawn = subprocess.run([*cli, "eval", "sheet", str(video), "-o", str(sheet)], capture_output=True, text=True)
    assert drawn.returncode == 0, drawn.stderr
    with Image.open(sheet) as image:
        width, height = image.size
    assert width == 1600 and height == 2 * round(400 * 640 / 640) + STRIP_HEIGHT  # 4 x 2 tiles, the timeline
