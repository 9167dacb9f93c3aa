"""Real parts for the provider-compatibility tests: the server in a subprocess (uvicorn on loopback, the
default preview engine, keys required), a loopback file server with real speech, portraits and a short video,
and a webhook receiver. The server/file-server/receiver classes are the API tests' own (tests/api)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from api_servers import FileServer
from PIL import Image

from infinitetalk.media.video import Mp4Writer


def _two_people(left: Path, right: Path, path: Path) -> Path:
    """Two portraits side by side: a picture with two faces for the multi-speaker routes."""
    with Image.open(left) as first, Image.open(right) as second:
        a, b = first.convert("RGB"), second.convert("RGB")
    height = min(a.height, b.height)
    a, b = (im.resize((round(im.width * height / im.height), height)) for im in (a, b))
    both = Image.new("RGB", (a.width + b.width, height))
    both.paste(a, (0, 0))
    both.paste(b, (a.width, 0))
    both.save(path)
    return path


def _portrait_video(portrait: Path, path: Path, *, seconds: float = 2.0, fps: int = 25,
                    size: tuple[int, int] = (448, 512)) -> Path:
    """A short MP4 of the portrait drifting slowly: a source video for the video-to-video routes."""
    width, height = size
    with Image.open(portrait) as picture:
        image = np.asarray(picture.convert("RGB").resize((width, height)))
    with Mp4Writer(path, width=width, height=height, fps=fps) as writer:
        for i in range(round(seconds * fps)):
            writer.write(np.roll(image, i // 5, axis=1))
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory, short_speech_wav: Path, grace_hopper_path: Path,
          astronaut_path: Path, noise_png: Path) -> Iterator[FileServer]:
    """Serves short.wav (~2 s of speech), grace_hopper.jpg, noise.png (no face), mask.png (all white),
    two_people.png, portrait.mp4 and two_people.mp4 on loopback."""
    root = tmp_path_factory.mktemp("compat-files")
    for source in (short_speech_wav, grace_hopper_path, noise_png):
        (root / source.name).write_bytes(source.read_bytes())
    with Image.open(grace_hopper_path) as portrait:
        Image.new("L", portrait.size, 255).save(root / "mask.png")
    _two_people(grace_hopper_path, astronaut_path, root / "two_people.png")
    _portrait_video(grace_hopper_path, root / "portrait.mp4")
    _portrait_video(root / "two_people.png", root / "two_people.mp4", size=(896, 512))
    with FileServer(root) as server:
        yield server
