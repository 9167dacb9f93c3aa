"""Rough edges a new user hit with the CLI (issue 13), each run the way that user ran it: a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infinitetalk.config import Settings
from infinitetalk.errors import InvalidRequest
from infinitetalk.schema import GenerationRequest, Mode

pytestmark = pytest.mark.integration  # the CLI (and install.sh) as a subprocess

CLI = [sys.executable, "-m", "infinitetalk.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=full, timeout=300)


# --- 1. INFINITETALK_FETCH_ALLOW_HOSTS as people write it -------------------------------------------------
@pytest.mark.parametrize(("value", "hosts"), [
    ("127.0.0.1", ["127.0.0.1"]),
    ("127.0.0.1, files.internal ,10.0.0.0/8", ["127.0.0.1", "files.internal", "10.0.0.0/8"]),
    ('["localhost", "127.0.0.1"]', ["localhost", "127.0.0.1"]),
    ("", []),
])
def test_allow_hosts_take_a_comma_list_or_json(value: str, hosts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFINITETALK_FETCH_ALLOW_HOSTS", value)
    assert Settings().fetch_allow_hosts == hosts


def test_a_bad_setting_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    result = run("serve", "--data-dir", str(tmp_path), env={"INFINITETALK_FETCH_ALLOW_HOSTS": '["unclosed'})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "error invalid_request: setting fetch_allow_hosts" in result.stderr and "commas" in result.stderr


# --- 2. one data folder per user, said out loud ------------------------------------------------------------
def test_keys_from_any_folder_reach_the_same_database(tmp_path: Path) -> None:
    home = {"XDG_DATA_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    made = run("keys", "create", "laptop", "--json", cwd=tmp_path / "a", env=home)
    assert made.returncode == 0, made.stderr
    listed = run("keys", "list", "--json", cwd=tmp_path / "b", env=home)
    assert [row["name"] for row in json.loads(listed.stdout)] == ["laptop"]
    data = tmp_path / "xdg" / "infinitetalk"
    for result in (made, listed):
        assert f"data folder {data}, database sqlite:///{data / 'infinitetalk.db'}" in result.stderr
    assert not (tmp_path / "a" / "infinitetalk-data").exists() and not (tmp_path / "b" / "infinitetalk-data").exists()


# --- 3. --help shows the real defaults ------------------------------------------------------------------------
@pytest.mark.parametrize("command", [["serve"], ["keys", "list"], ["keys", "create"]])
def test_help_shows_defaults(command: list[str], tmp_path: Path) -> None:
    result = run(*command, "--help", env={"XDG_DATA_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert not re.search(r"\w \.\s", result.stdout), result.stdout  # "Port ." where the default was eaten
    assert f"[default: {tmp_path / 'infinitetalk'}]" in result.stdout
    if command == ["serve"]:
        for default in ("[default: 127.0.0.1]", "[default: 8000]", "[default: 1]", "[default: auto]"):
            assert default in result.stdout


# --- 4. the mode follows from the inputs -------------------------------------------------------------------------
def test_a_video_means_video_to_video() -> None:
    assert GenerationRequest.parse({"video": "clip.mp4", "audio": "a.wav"}).mode is Mode.VIDEO_TO_VIDEO
    assert GenerationRequest.parse({"image": "face.png", "audio": "a.wav"}).mode is Mode.IMAGE_TO_VIDEO
    with pytest.raises(InvalidRequest, match="not both"):
        GenerationRequest.parse({"image": "face.png", "video": "clip.mp4", "audio": "a.wav"})
    with pytest.raises(InvalidRequest, match="leave mode out"):
        GenerationRequest.parse({"mode": "image-to-video", "video": "clip.mp4", "audio": "a.wav"})


def test_cli_error_names_no_flag_that_does_not_exist(tmp_path: Path, grace_hopper_path: Path,
                                                     short_speech_wav: Path) -> None:
    result = run("generate", "--image", str(grace_hopper_path), "--video", str(grace_hopper_path),
                 "--audio", str(short_speech_wav), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 2
    assert "not both" in result.stderr and "--mode" not in result.stderr and "use mode" not in result.stderr


# --- 5. the instant engine is no choice for a person ----------------------------------------------------------
def test_instant_engine_is_neither_listed_nor_taken(tmp_path: Path) -> None:
    help_text = run("generate", "--help").stdout
    assert "--engine" in help_text and "instant" not in help_text
    result = run("generate", "--demo", "--engine", "instant", "-o", str(tmp_path / "blue.mp4"))
    assert result.returncode == 2 and not (tmp_path / "blue.mp4").exists()
    assert "choose auto, preview, neural" in result.stderr and "load benchmarks" in result.stderr


# --- 6. eval sync says what its numbers mean -------------------------------------------------------------------
def test_eval_sync_reads_its_numbers_and_never_prints_nan(tmp_path: Path, short_speech_wav: Path) -> None:
    from infinitetalk.media.audio import decode_audio
    from infinitetalk.media.video import Mp4Writer

    speech = decode_audio(short_speech_wav, sample_rate=44_100)
    video = tmp_path / "faceless.mp4"  # grey frames: no face to measure
    with Mp4Writer(video, width=128, height=128, fps=25, audio=speech) as writer:
        for index in range(round(len(speech) / 44_100 * 25)):
            writer.write(np.full((128, 128, 3), 90 + index % 20, np.uint8))
    result = run("eval", "sync", str(video))
    assert result.returncode == 0, result.stderr
    assert not re.search(r"nan|inf", result.stdout), result.stdout
    assert "n/a" in result.stdout and "not measured: no face" in result.stdout


def test_sync_reading_thresholds() -> None:
    from infinitetalk.eval.sync import SyncScore

    def reading(r: float, lag: int = 0) -> str:
        return SyncScore(r_lag0=r, best_lag=lag, r_best=r, r_box=r, box_lag=lag).reading()

    assert reading(0.7).startswith("lip sync good") and "0.5 or more" in reading(0.7)
    assert reading(0.7, lag=4).startswith("lip sync in sync, but 4 frames late")
    assert reading(0.3).startswith("lip sync weak")
    assert reading(0.02).startswith("lip sync none")
    assert reading(float("-inf")).startswith("not measured")


# --- 8. keys: an empty list, a negative top-up ----------------------------------------------------------------
def test_keys_list_has_a_header_and_says_when_empty(tmp_path: Path) -> None:
    empty = run("keys", "list", "--data-dir", str(tmp_path))
    assert empty.returncode == 0 and "no keys yet" in empty.stdout and "keys create" in empty.stdout
    run("keys", "create", "app", "--balance", "3", "--data-dir", str(tmp_path))
    listed = run("keys", "list", "--data-dir", str(tmp_path)).stdout.splitlines()
    assert listed[0].split() == ["ID", "PREFIX", "STATE", "BALANCE", "NAME"]
    assert listed[1].split()[2:] == ["active", "$3.00", "app"]


@pytest.mark.parametrize("amount", ["-3", "0", "nan"])
def test_top_up_never_lowers_a_balance(amount: str, tmp_path: Path) -> None:
    made = json.loads(run("keys", "create", "app", "--balance", "5", "--json", "--data-dir", str(tmp_path)).stdout)
    result = run("keys", "top-up", "--data-dir", str(tmp_path), "--", made["id"], amount)
    assert result.returncode == 2 and "give a positive number of USD" in result.stderr
    listed = json.loads(run("keys", "list", "--json", "--data-dir", str(tmp_path)).stdout)
    assert listed[0]["balance"] == 5


# --- 10. install.sh says what it is doing -------------------------------------------------------------------------
def test_install_script_announces_each_step_before_it_runs(tmp_path: Path) -> None:
    """The real script, with python3, apt-get and the venv's python replaced by stubs that only say they ran."""
    repo, stubs = tmp_path / "repo", tmp_path / "bin"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "install.sh").write_text((ROOT / "scripts" / "install.sh").read_text())
    venv = repo / ".venv" / "bin"
    venv.mkdir(parents=True)
    stubs.mkdir()
    # python3 answers install.sh's version question first (issue 21: it checks 3.11+ before anything else)
    python3 = 'case "$*" in *version_info*) echo 3.11.7;; *) echo "RAN python3 $*" >&2;; esac'
    for stub, body in ((stubs / "python3", python3), (venv / "python", 'echo "RAN python $*" >&2'),
                       (stubs / "apt-get", 'echo "RAN apt-get $*" >&2'),
                       (venv / "infinitetalk", "echo infinitetalk 0.0.0")):
        stub.write_text(f"#!/bin/sh\n{body}\n")
        stub.chmod(0o755)
    result = subprocess.run(["bash", str(repo / "scripts" / "install.sh")], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("install.sh [1/7] ")
    ran = [i for i, line in enumerate(lines) if line.startswith("RAN ")]
    assert ran and all(any(line.startswith("install.sh [") for line in lines[:i]) for i in ran)
    last_step = {lines[i]: next(line for line in reversed(lines[:i]) if line.startswith("install.sh [")) for i in ran}
    assert "torch" in last_step["RAN python -m pip install -q torch==2.13.0"]
    assert "install.sh [7/7] " in result.stderr and "installed: infinitetalk 0.0.0" in result.stdout
