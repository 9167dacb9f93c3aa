"""scripts/install.sh's own decisions (issue 21), run for real on a copy of the script with stand-ins for the
system's `python3` and `apt-get` that record what they are asked: it stops first, with one line and the command
that fixes it, on a Python that is too old or cannot make a virtual environment, and installs the test tools
unless told not to. (The full install itself is CI's job: it runs the README's command as written.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # install.sh as a subprocess

ROOT = Path(__file__).resolve().parents[2]

#: Answers the script's questions as a Python of $FAKE_VERSION would (venv-less with $FAKE_NO_VENV=1) and logs
#: every call; `-m venv DIR` makes DIR/bin/python (itself) and DIR/bin/infinitetalk.
FAKE_PYTHON = r"""#!/usr/bin/env bash
echo "python $*" >> "$FAKE_LOG"
case "$*" in
  *ensurepip*) exit "${FAKE_NO_VENV:-0}" ;;
  *version_info*) echo "${FAKE_VERSION:-3.11.7}"; exit 0 ;;
esac
if [ "${1:-}" = -m ] && [ "${2:-}" = venv ]; then
  mkdir -p "$3/bin"; cp "$0" "$3/bin/python"
  printf '#!/bin/sh\necho infinitetalk 0.0.0\n' > "$3/bin/infinitetalk"; chmod +x "$3/bin/infinitetalk"
fi
exit 0
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A checkout with only the script, and a PATH whose python3 and apt-get are the stand-ins."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install.sh", tmp_path / "scripts" / "install.sh")
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    for name, body in (("python3", FAKE_PYTHON), ("apt-get", '#!/bin/sh\necho "apt-get $*" >> "$FAKE_LOG"\n')):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def install(sandbox: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    log = sandbox / "calls.log"
    log.touch()
    inherited = {k: v for k, v in os.environ.items() if k not in ("INFINITETALK_INSTALL_DEV", "INFINITETALK_PYTHON")}
    full = {**inherited, "PATH": f"{sandbox / 'fakebin'}:{os.environ['PATH']}", "FAKE_LOG": str(log), **env}
    done = subprocess.run(["bash", str(sandbox / "scripts" / "install.sh")], capture_output=True, text=True,
                          env=full, timeout=60)
    return done, log.read_text().splitlines()


def test_a_python_older_than_3_11_stops_it_first(sandbox: Path) -> None:
    done, calls = install(sandbox, FAKE_VERSION="3.10.12")
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert "3.10.12" in line and "3.11" in line and "apt-get install" in line, done.stderr
    assert not any(call.startswith("apt-get") for call in calls), calls  # before the minutes of apt
    assert not (sandbox / ".venv").exists()


def test_a_python_without_venv_stops_it_first_naming_the_package(sandbox: Path) -> None:
    done, calls = install(sandbox, FAKE_VERSION="3.12.3", FAKE_NO_VENV="1")
    assert done.returncode == 1
    line = done.stderr.strip().splitlines()[-1]
    assert "sudo apt-get install -y python3.12-venv" in line, done.stderr
    assert not any(call.startswith("apt-get") for call in calls), calls
    assert not (sandbox / ".venv").exists()


def test_the_default_install_has_the_test_tools(sandbox: Path) -> None:
    done, calls = install(sandbox)
    assert done.returncode == 0, done.stderr
    assert any(call.endswith("install -q -e .[neural,dev]") for call in calls), calls
    assert any("runpod==1.12.0" in call for call in calls), calls
    assert any(call.endswith("install -q torch==2.13.0") for call in calls), calls


def test_a_production_install_leaves_the_test_tools_out(sandbox: Path) -> None:
    done, calls = install(sandbox, INFINITETALK_INSTALL_DEV="0")
    assert done.returncode == 0, done.stderr
    assert any(call.endswith("install -q -e .[neural]") for call in calls), calls
    assert not any("dev]" in call or "runpod" in call or "requirements-runpod" in call for call in calls), calls
    assert "without the test tools" in done.stderr
