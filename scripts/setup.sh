#!/usr/bin/env bash
# Set up everything analogep needs on a fresh Debian/Ubuntu machine, idempotently:
# ngspice (Debian's packages: the CLI and the shared library PySpice loads) and a
# virtual environment in .venv with analogep installed in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v ngspice >/dev/null 2>&1 || ! ldconfig -p 2>/dev/null | grep -q libngspice.so; then
  echo "setup: installing ngspice from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq ngspice libngspice0-dev >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    $SUDO apt-get install -y -qq python3-venv >/dev/null
    "$PYTHON" -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import analogep, pytest" 2>/dev/null || [ pyproject.toml -nt .venv/.analogep-installed ]; then
  echo "setup: installing analogep and its dependencies into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[test]"
  touch .venv/.analogep-installed
fi
