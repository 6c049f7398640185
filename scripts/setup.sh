#!/usr/bin/env bash
# Set up everything analogep needs on a fresh Debian/Ubuntu machine, idempotently:
# ngspice (the CLI and the shared library PySpice loads) and a virtual environment in
# .venv with analogep installed in editable mode. On Debian bookworm ngspice comes from
# bookworm-backports (ngspice 46, built with the KLU solver: several times faster on the
# training sweeps than bookworm's ngspice 39 with Sparse 1.3), and an installed 39 is
# upgraded; elsewhere from the distribution's own packages. Ends by saying which ngspice
# and which solver it got.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

# The oldest ngspice taken from bookworm-backports: the first one there built with KLU.
KLU_VERSION=46
BACKPORTS_LIST=/etc/apt/sources.list.d/analogep-bookworm-backports.sources

have_ngspice() {
  command -v ngspice >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libngspice\.so '
}

# Installed version of a Debian package, or empty.
installed() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

is_bookworm() {
  [ -r /etc/os-release ] && [ "$(. /etc/os-release && echo "${ID:-}:${VERSION_CODENAME:-}")" = "debian:bookworm" ]
}

klu_installed() {
  local pkg v
  for pkg in ngspice libngspice0 libngspice0-dev; do
    v="$(installed "$pkg")"
    [ -n "$v" ] && dpkg --compare-versions "$v" ge "$KLU_VERSION" || return 1
  done
}

install_backports() {
  if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "setup: adding Debian's bookworm-backports suite ($BACKPORTS_LIST)" >&2
    printf '%s\n' "Types: deb" "URIs: http://deb.debian.org/debian" "Suites: bookworm-backports" \
      "Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" | $SUDO tee "$BACKPORTS_LIST" >/dev/null
  fi
  echo "setup: installing ngspice $KLU_VERSION (KLU) from bookworm-backports" >&2
  $SUDO apt-get update -qq \
    && $SUDO apt-get install -y -qq -t bookworm-backports ngspice libngspice0 libngspice0-dev >/dev/null
}

if is_bookworm; then
  if ! klu_installed && ! install_backports; then
    echo "setup: warning: could not install ngspice from bookworm-backports; using bookworm's ngspice (no KLU)" >&2
  fi
fi
if ! have_ngspice; then
  echo "setup: installing ngspice from the distribution's packages" >&2
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

.venv/bin/python - >&2 <<'PY'
from analogep.spice.run.ngspice import ngspice_info

info = ngspice_info()
solver = "KLU" if info.klu else "Sparse 1.3 (no KLU)"
library = "shared library loads through PySpice" if info.shared else "no shared library: subprocess runner only"
print(f"setup: ngspice {info.version}, solver {solver}, {library}")
PY
