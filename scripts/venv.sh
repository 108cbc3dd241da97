#!/usr/bin/env bash
# Creates (once) the project's virtual environment and installs this checkout into it.
# The venv lives outside the clone, keyed by a hash of requirements.txt + constraints.txt, so laptops and CI
# reuse it across clones; a fresh machine builds it here (about 9 minutes, 6.5 GB; pip only).
# Usage: source scripts/venv.sh   (exports SPHEREREID_VENV and puts its bin/ first on PATH)
set -euo pipefail
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_key=$(cat "$_root/requirements.txt" "$_root/constraints.txt" | sha256sum | cut -c1-12)
export SPHEREREID_VENV=${SPHEREREID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/spherereid/venv-$_key}
if [ ! -f "$SPHEREREID_VENV/.complete" ]; then
  echo "[venv] building $SPHEREREID_VENV (first run: ~9 min)" >&2
  rm -rf "$SPHEREREID_VENV"
  python3 -m venv "$SPHEREREID_VENV"
  "$SPHEREREID_VENV/bin/pip" install --quiet --disable-pip-version-check \
    -r "$_root/requirements.txt" -c "$_root/constraints.txt"
  touch "$SPHEREREID_VENV/.complete"
fi
# Editable install of this checkout (seconds): `spherereid` and `python -m spherereid...` use this clone.
"$SPHEREREID_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -e "$_root" >/dev/null
export PATH="$SPHEREREID_VENV/bin:$PATH"
export MLFLOW_DISABLE_TELEMETRY=true
set +euo pipefail
