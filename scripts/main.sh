#!/usr/bin/env bash
# The main job: build the venv on first use, then run the DVC pipeline on params.yaml's datasets
# (the synthetic default: synthesize -> preprocess -> train -> evaluate -> register in MLflow) and print
# the metrics, the registered model version, its aliases and how to open the MLflow UI.
# Extra arguments go to `dvc repro` (e.g. --force).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
start=$(date +%s)
dvc repro "$@"
spherereid summary
echo "main job took $(( $(date +%s) - start ))s"
