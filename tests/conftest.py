"""Shared test inputs, made on the spot from real tools and files that ship in packages."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

SENTENCES = {
    "hello": "Hello there. My name is Grace, and I wrote the first compiler. Machines can learn to speak.",
    "weather": "The weather today is cold and windy, with rain in the afternoon and bright sun by the evening.",
    "short": "Open wide, then close.",
}


def espeak(text: str, path: Path, *, voice: str = "en-us", speed: int = 150) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/install.sh (it installs it with apt-get)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir: Path) -> Path:
    """About 6 s of English speech (WAV, 22.05 kHz mono)."""
    return espeak(SENTENCES["hello"], media_dir / "hello.wav")


@pytest.fixture(scope="session")
def other_speech_wav(media_dir: Path) -> Path:
    """A different sentence, for 'scored against the wrong audio' controls."""
    return espeak(SENTENCES["weather"], media_dir / "weather.wav", voice="en-gb", speed=165)


@pytest.fixture(scope="session")
def short_speech_wav(media_dir: Path) -> Path:
    return espeak(SENTENCES["short"], media_dir / "short.wav")


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """A 512x600 JPEG portrait that ships with matplotlib."""
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="session")
def astronaut_path(media_dir: Path) -> Path:
    """scikit-image's 512x512 astronaut portrait, saved as PNG."""
    import skimage.data

    path = media_dir / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(path)
    return path


@pytest.fixture(scope="session")
def noise_png(media_dir: Path) -> Path:
    """A picture with no face in it."""
    rng = np.random.default_rng(0)
    path = media_dir / "noise.png"
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    return path
