"""The playground in a real browser against the real server: `infinitetalk serve` on loopback with the default
preview engine and keys required, and a headless Chromium (browser.py)."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_servers import Server, make_key
from browser import chromium


@pytest.fixture(scope="module")
def playground_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    data_dir = tmp_path_factory.mktemp("playground-data")
    key = make_key(data_dir, "playground", balance=5)
    with Server(data_dir, env={"INFINITETALK_ENGINE": "preview", "INFINITETALK_WORKERS": "1"}) as server:
        yield server, key


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="session")
def long_speech_wav(media_dir: Path, speech_wav: Path, other_speech_wav: Path, slow_speech_wav: Path) -> Path:
    """Half a minute of espeak-ng speech, three sentences twice: a task still going when the test cancels it."""
    path = media_dir / "long.wav"
    parts = [speech_wav, other_speech_wav, slow_speech_wav] * 2
    with wave.open(str(parts[0])) as first:
        params = first.getparams()
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        for part in parts:
            with wave.open(str(part)) as source:
                assert source.getframerate() == params.framerate and source.getnchannels() == params.nchannels
                out.writeframes(source.readframes(source.getnframes()))
    return path
