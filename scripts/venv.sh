#!/usr/bin/env bash
# Creates (once) the project's virtual environment and installs this checkout into it.
# The venv lives outside the clone, keyed by a hash of requirements.txt + requirements-dev.txt +
# constraints.txt, so laptops and CI reuse it across clones; a fresh machine builds it here (about
# 9 minutes, 6.5 GB; pip only).
# Usage: source scripts/venv.sh   (exports SPHEREREID_VENV and puts its bin/ first on PATH)
# Safe to source in an interactive shell: it leaves the shell's options (set -e/-u/-o pipefail) as they
# were, and a failed install returns non-zero instead of closing the terminal. The install itself runs as
# a separate process (scripts/install_venv.sh) with strict options of its own.
_spherereid_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_spherereid_key=$(cat "$_spherereid_root/requirements.txt" "$_spherereid_root/requirements-dev.txt" \
  "$_spherereid_root/constraints.txt" | sha256sum | cut -c1-12)
export SPHEREREID_VENV=${SPHEREREID_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/spherereid/venv-$_spherereid_key}
if bash "$_spherereid_root/scripts/install_venv.sh" "$_spherereid_root"; then
  unset _spherereid_root _spherereid_key
  export PATH="$SPHEREREID_VENV/bin:$PATH"
  export MLFLOW_DISABLE_TELEMETRY=true
else
  echo "[venv] setting up $SPHEREREID_VENV failed (see the output above); fix it and source again" >&2
  unset _spherereid_root _spherereid_key
  return 1 2>/dev/null || exit 1  # `return` when sourced, `exit` when run as a script
fi
