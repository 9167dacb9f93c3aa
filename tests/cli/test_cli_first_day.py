"""An operator's first day with the CLI (issue 21): what each command prints, run the way a person runs it (a real
subprocess, stderr piped as in a log or CI)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.integration  # the CLI as a subprocess

CLI = [sys.executable, "-m", "infinitetalk.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full, timeout=300)


@pytest.fixture(scope="module")
def talk(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path, short_speech_wav: Path) -> tuple[Path, str]:
    """One short video made the way a person makes it, with what `generate` printed on a piped stderr."""
    video = tmp_path_factory.mktemp("talk") / "talk.mp4"
    made = run("generate", "--image", str(astronaut_path), "--audio", str(short_speech_wav), "--seed", "1",
               "-o", str(video))
    assert made.returncode == 0, made.stderr
    return video, made.stderr


def test_no_blank_line_before_wrote_when_stderr_is_not_a_terminal(talk: tuple[Path, str]) -> None:
    _, said = talk
    assert said.startswith("wrote "), repr(said[:80])


def test_no_blank_line_before_an_error_when_stderr_is_not_a_terminal(astronaut_path: Path, tmp_path: Path) -> None:
    failed = run("generate", "--image", str(astronaut_path), "--audio", str(astronaut_path), "-o",
                 str(tmp_path / "x.mp4"))
    assert failed.returncode == 2
    assert failed.stderr.startswith("error audio_unreadable: "), repr(failed.stderr[:80])


def test_eval_sync_says_the_best_lag_once_when_it_is_lag_0(talk: tuple[Path, str]) -> None:
    video, _ = talk
    score = run("eval", "sync", str(video))
    assert score.returncode == 0, score.stderr
    first = score.stdout.splitlines()[0]
    assert first.startswith("aperture r=")
    # the best lag is named once: "at lag 0 (best within +-5 frames)" or "at lag 0, r=... at lag +3"
    assert "at lag +0" not in first and "at lag -0" not in first, first


def test_eval_sync_of_a_picture_says_it_is_not_a_video(tmp_path: Path, astronaut_path: Path) -> None:
    picture = tmp_path / "face.png"
    Image.open(astronaut_path).save(picture)
    score = run("eval", "sync", str(picture))
    assert score.returncode == 2
    line = score.stderr.strip()
    assert line.startswith("error video_unreadable: ") and "not a video" in line, line
    assert "audio" not in line and "speech" not in line, line
    assert len(line.splitlines()) == 1


@pytest.mark.parametrize(("argv", "orig_argv", "program"), [
    # the console script, as the README types it
    ([".venv/bin/infinitetalk", "generate", "-o", "a b.mp4"],
     ["/srv/it/.venv/bin/python", ".venv/bin/infinitetalk", "generate", "-o", "a b.mp4"],
     [".venv/bin/infinitetalk"]),
    # on PATH (an activated venv)
    (["/srv/it/.venv/bin/infinitetalk", "generate", "-o", "a b.mp4"],
     ["/srv/it/.venv/bin/python", "/srv/it/.venv/bin/infinitetalk", "generate", "-o", "a b.mp4"],
     ["/srv/it/.venv/bin/infinitetalk"]),
    # python -m infinitetalk.cli: argv[0] is the module's file, which cannot run on its own
    (["/srv/it/src/infinitetalk/cli/__main__.py", "generate", "-o", "a b.mp4"],
     [".venv/bin/python", "-m", "infinitetalk.cli", "generate", "-o", "a b.mp4"],
     [".venv/bin/python", "-m", "infinitetalk.cli"]),
])
def test_the_resume_hint_is_the_program_as_invoked(argv: list[str], orig_argv: list[str], program: list[str]) -> None:
    from infinitetalk.cli.generate import resume_command

    hint = resume_command(argv, orig_argv)
    assert shlex.split(hint) == [*program, "generate", "-o", "a b.mp4", "--resume"]
    assert resume_command([*argv, "--resume"], [*orig_argv, "--resume"]).count("--resume") == 1


def test_the_resume_hint_pasted_into_a_shell_runs(tmp_path: Path) -> None:
    """What `generate` prints after Ctrl-C runs as printed, from the folder it ran in (here: --help, at once)."""
    from infinitetalk.cli.generate import resume_command

    venv_program = Path(sys.executable).with_name("infinitetalk")
    hint = resume_command([str(venv_program), "generate", "--help"],
                          [sys.executable, str(venv_program), "generate", "--help"])
    pasted = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert pasted.returncode == 0, pasted.stderr
    assert "--resume" in pasted.stdout


# --- `workers` and `keys`: the whole id in a pipe, and only the store that was read ------------------------------
@pytest.fixture(scope="module")
def sqlite_with_a_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A data folder whose store has one live worker row (a registration as `worker` makes, beating)."""
    from infinitetalk.config import Settings
    from infinitetalk.runtime.fleet import WorkerRegistration
    from infinitetalk.tasks.db import open_database

    data = tmp_path_factory.mktemp("data")
    db, sessions = open_database(Settings(data_dir=data))
    registration = WorkerRegistration(sessions, gpu="0", engine="preview")
    try:
        yield data, registration.id
    finally:
        registration.stop()
        db.dispose()


def test_workers_prints_whole_ids_into_a_pipe(sqlite_with_a_worker: tuple[Path, str]) -> None:
    data, worker_id = sqlite_with_a_worker
    listed = run("workers", "--data-dir", str(data), env={"COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    assert worker_id in listed.stdout, listed.stdout
    header, row = listed.stdout.splitlines()
    assert header.split()[:3] == ["WORKER", "HOST", "GPU"] and row.split()[0] == worker_id


def test_workers_and_keys_on_postgresql_name_only_the_database(postgres_url: str, tmp_path: Path) -> None:
    for command in (["workers"], ["keys", "list"]):
        said = run(*command, "--database", postgres_url, "--data-dir", str(tmp_path))
        assert said.returncode == 0, said.stderr
        assert "data folder" not in said.stderr and str(tmp_path) not in said.stderr, said.stderr
        assert said.stderr.strip() == "database postgresql+psycopg://infinitetalk@" + postgres_url.split("@", 1)[1]


def test_workers_and_keys_on_sqlite_still_name_the_data_folder(sqlite_with_a_worker: tuple[Path, str]) -> None:
    data, _ = sqlite_with_a_worker
    for command in (["workers"], ["keys", "list"]):
        said = run(*command, "--data-dir", str(data))
        assert said.returncode == 0 and str(data.resolve()) in said.stderr, said.stderr


def test_keys_revoke_help_says_how_soon() -> None:
    helped = run("keys", "revoke", "--help")
    assert "at once" not in helped.stdout
    assert "INFINITETALK_KEY_CACHE_S" in helped.stdout and "1 s" in helped.stdout, helped.stdout


def test_the_readme_offers_ffplay_only_if_installed() -> None:
    """Nothing installs FFmpeg's programs (PyAV brings its libraries), so `ffplay` is never the only player named."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    mentions = [m.start() for m in re.finditer("ffplay", readme)]
    assert all("if installed" in readme[at:at + 40] for at in mentions), [readme[at - 60:at + 40] for at in mentions]
