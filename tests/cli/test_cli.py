"""The `infinitetalk` command as a user runs it: a real subprocess, real files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from infinitetalk.media.audio import probe_duration
from infinitetalk.media.probe import probe

pytestmark = pytest.mark.integration  # the CLI as a subprocess

CLI = [sys.executable, "-m", "infinitetalk.cli"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_generate_demo_writes_a_talking_video(tmp_path: Path) -> None:
    out = tmp_path / "talk.mp4"
    result = run("generate", "--demo", "--seed", "11", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "seed 11" in result.stderr and "wrote" in result.stderr
    info = probe(out)
    video, audio = info.streams
    assert (video.kind, video.codec, audio.kind, audio.codec) == ("video", "h264", "audio", "aac")
    assert video.fps == 25 and video.width % 16 == 0 and video.height % 16 == 0
    from infinitetalk.demo import demo_inputs

    speech = probe_duration(demo_inputs()[1])
    assert abs(video.frames / 25 - speech) <= 1 / 25
    assert [p.name for p in tmp_path.iterdir()] == ["talk.mp4"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--image", "{portrait}", "--audio", "{missing}"], "file_not_found"),
        (["--image", "{portrait}", "--audio", "{portrait}"], "audio_unreadable"),
        (["--image", "{speech}", "--audio", "{speech}"], "image_unreadable"),
        (["--image", "{portrait}", "--audio", "{speech}", "--fps", "60"], "invalid_request"),
        (["--image", "{portrait}", "--audio", "{speech}", "--prompt", "  "], "invalid_request"),
        (["--image", "{noise}", "--audio", "{speech}"], "no_face_detected"),
        (["--image", "{portrait}", "--audio", "http://169.254.169.254/latest/meta-data/"], "url_not_allowed"),
        (["--image", "{bomb}", "--audio", "{speech}"], "image_too_large"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(args: list[str], code: str, tmp_path: Path, grace_hopper_path: Path,
                                                 short_speech_wav: Path, noise_png: Path) -> None:
    names = {"portrait": grace_hopper_path, "speech": short_speech_wav, "noise": noise_png,
             "missing": tmp_path / "nope.wav", "bomb": bomb_png(tmp_path / "inputs" / "bomb.png")}
    out = tmp_path / "out.mp4"
    result = run("generate", *[a.format(**names) for a in args], "-q", "-o", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error {code}:"), result.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] in ([], ["inputs"])


def bomb_png(path: Path, side: int = 40_000) -> Path:
    """A PNG whose header claims side x side pixels (1.6 gigapixels by default) over a few hundred bytes."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    path.parent.mkdir(exist_ok=True)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\x00" * (1 + side // 8))) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("command", ["sync", "sheet"])
@pytest.mark.parametrize("kind", ["text", "speech"])
def test_eval_on_a_file_that_is_not_a_video_ends_with_one_line(command: str, kind: str, tmp_path: Path,
                                                               short_speech_wav: Path) -> None:
    source = short_speech_wav
    if kind == "text":
        source = tmp_path / "notes.mp4"
        source.write_text("meeting notes, not a video\n" * 20)
    extra = ["-o", str(tmp_path / "sheet.png")] if command == "sheet" else []
    result = run("eval", command, str(source), *extra)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error video_unreadable: video: "), result.stderr
    assert not (tmp_path / "sheet.png").exists()


def test_probe_prints_streams_and_json(short_speech_wav: Path) -> None:
    result = run("probe", str(short_speech_wav), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["duration_s"] == pytest.approx(probe_duration(short_speech_wav), abs=0.01)
    assert data["streams"][0]["kind"] == "audio"
    table = run("probe", str(short_speech_wav))
    assert "audio" in table.stdout and "pcm_s16le" in table.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("infinitetalk ")


def test_keys_errors_end_like_every_other_command(tmp_path: Path) -> None:
    result = run("keys", "top-up", "key_does_not_exist", "5", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error not_found:"), result.stderr
