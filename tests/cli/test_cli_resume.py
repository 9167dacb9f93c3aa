"""`infinitetalk generate`: Ctrl-C keeps the finished chunks and says how to go on; --resume makes the video an
uninterrupted run makes."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from api_servers import wait_until
from long_renders import SEED, frame_hashes, uninterrupted

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the CLI as a subprocess


def _chunks_kept(parts: Path) -> int:
    try:
        return len(json.loads((parts / "checkpoint.json").read_text())["segments"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _with_ctrl_c() -> None:
    """A child's Ctrl-C as at a terminal: a shell's background job (pytest run with `&`) starts with SIGINT
    ignored, which its children inherit, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_then_resume(tmp_path: Path, long_job: tuple) -> None:
    image, audio, folder = long_job
    reference = uninterrupted(image, audio, folder)
    output = tmp_path / "talk.mp4"
    parts = tmp_path / "talk.mp4.parts"
    command = [sys.executable, "-m", "infinitetalk.cli", "generate", "--image", str(image), "--audio", str(audio),
               "--seed", str(SEED), "-o", str(output), "--quiet"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, preexec_fn=_with_ctrl_c)
    wait_until(lambda: _chunks_kept(parts) >= 2 or run.poll() is not None, timeout=300, what="two chunks")
    run.send_signal(signal.SIGINT)
    _, said = run.communicate(timeout=120)
    assert run.returncode == 130, said
    kept = _chunks_kept(parts)
    assert f"interrupted after chunk {kept} of 21" in said
    assert not output.exists()
    # the command it prints is the one that goes on, pasted into a shell as printed (the program as invoked)
    pasted = said.strip().splitlines()[-1].strip()
    assert shlex.split(pasted)[:3] == [sys.executable, "-m", "infinitetalk.cli"] and pasted.endswith(" --resume")
    resumed = subprocess.run(["bash", "-c", pasted], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert frame_hashes(output) == reference
    assert not parts.exists()  # nothing left once the video is whole


def test_resume_refuses_another_job_s_chunks(tmp_path: Path, long_job: tuple, short_speech_wav: Path) -> None:
    image, audio, _ = long_job
    output = tmp_path / "talk.mp4"
    parts = tmp_path / "talk.mp4.parts"
    first = subprocess.Popen([sys.executable, "-m", "infinitetalk.cli", "generate", "--image", str(image), "--audio",
                              str(audio), "-o", str(output), "--quiet"], stderr=subprocess.PIPE, text=True,
                             preexec_fn=_with_ctrl_c)
    wait_until(lambda: _chunks_kept(parts) >= 1 or first.poll() is not None, timeout=300, what="a chunk")
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=120)
    other = subprocess.run([sys.executable, "-m", "infinitetalk.cli", "generate", "--image", str(image), "--audio",
                            str(short_speech_wav), "-o", str(output), "--quiet", "--resume"], capture_output=True,
                           text=True, timeout=300)
    assert other.returncode != 0
    assert "was for other inputs" in other.stderr and "without --resume" in other.stderr
    assert "Traceback" not in other.stderr
