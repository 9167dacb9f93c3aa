"""A 60 s job for the resume tests: its speech, and the frames of its uninterrupted render to compare with."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import numpy as np
from scipy.io import wavfile

#: The request every resume test sends (plus its image and audio): a fixed seed, so runs are comparable.
SEED = 20261130
SECONDS = 60


def long_speech(source: Path, target: Path, seconds: float = SECONDS) -> Path:
    """``source`` speech said over and over, with a short pause between, for exactly ``seconds``."""
    rate, pcm = wavfile.read(source)
    gap = np.zeros(rate // 3, dtype=pcm.dtype)
    once = np.concatenate([pcm, gap])
    wavfile.write(target, rate, np.resize(once, int(seconds * rate)))
    return target


def frame_hashes(path: Path) -> list[str]:
    """One digest per decoded frame (a 60 s video's frames do not all fit in a test's memory)."""
    with av.open(str(path)) as container:
        return [hashlib.sha256(frame.to_ndarray(format="rgb24").tobytes()).hexdigest()[:16]
                for frame in container.decode(video=0)]


def decoded_audio(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])


def uninterrupted(image: Path, audio: Path, folder: Path) -> list[str]:
    """The frames of the job rendered in one go, in this process (cached beside its inputs)."""
    from infinitetalk.engines.preview.engine import PreviewEngine
    from infinitetalk.render.render import render
    from infinitetalk.schema import GenerationRequest

    cached = folder / "uninterrupted.json"
    if not cached.exists():
        request = GenerationRequest.parse({"image": str(image), "audio": str(audio), "seed": SEED})
        render(request, folder / "uninterrupted.mp4", engine=PreviewEngine())
        cached.write_text(json.dumps(frame_hashes(folder / "uninterrupted.mp4")))
    return json.loads(cached.read_text())
