#!/usr/bin/env bash
# Builds (once) the venv at $SPHEREREID_VENV from requirements.txt (runtime) + requirements-dev.txt (tests,
# lint) with constraints.txt (the lock of both) and installs this checkout into it in editable mode.
# Run by scripts/venv.sh as its own process, so that its strict options never touch the caller's shell.
# Usage: SPHEREREID_VENV=DIR bash scripts/install_venv.sh REPO_ROOT
set -euo pipefail
root=$1
: "${SPHEREREID_VENV:?set SPHEREREID_VENV to the venv folder}"
if [ ! -f "$SPHEREREID_VENV/.complete" ]; then
  echo "[venv] building $SPHEREREID_VENV (first run: ~9 min)" >&2
  rm -rf "$SPHEREREID_VENV"
  python3 -m venv "$SPHEREREID_VENV"
  "$SPHEREREID_VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r "$root/requirements.txt" -r "$root/requirements-dev.txt" -c "$root/constraints.txt"
  touch "$SPHEREREID_VENV/.complete"
fi
# Editable install of this checkout (seconds): `spherereid` and `python -m spherereid...` use this clone.
"$SPHEREREID_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -e "$root" >/dev/null
