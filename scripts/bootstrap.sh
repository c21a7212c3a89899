#!/usr/bin/env bash
# Create .venv and install the project with its dev extra, once per change of
# pyproject.toml (a stamp holds its hash). Sourced by scripts/test and scripts/demo
# so each of them works on a fresh machine with nothing but Python 3.11+.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ROOT}/.venv"
PYTHON="${PYTHON:-python3}"
stamp="${VENV}/.installed-$(sha256sum "${ROOT}/pyproject.toml" | cut -c1-16)"
if [[ ! -f "${stamp}" ]]; then
  echo "bootstrap: installing the project and its dev tools into .venv" >&2
  [[ -x "${VENV}/bin/python" ]] || "${PYTHON}" -m venv "${VENV}"
  "${VENV}/bin/python" -m pip install --quiet --upgrade pip
  "${VENV}/bin/python" -m pip install --quiet -e "${ROOT}[dev]"
  rm -f "${VENV}"/.installed-*
  touch "${stamp}"
fi
export PATH="${VENV}/bin:${PATH}"
