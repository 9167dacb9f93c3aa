"""Inputs every install has, for `infinitetalk generate --demo` and the playground's "Try a sample": matplotlib's
Grace Hopper portrait and speech made with espeak-ng, shipped as MP3."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def demo_inputs() -> tuple[Path, Path]:
    """(portrait, speech)."""
    import matplotlib  # here, not at import: the API server loads this module but rarely needs the portrait

    portrait = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return portrait, Path(str(resources.files(__name__) / "speech.mp3"))
