#!/usr/bin/env bash
# Runs the test suite in the project venv (built on first use).
#   bash scripts/test.sh          the default suite (everything not marked slow or container; ~1 min on 2 cores)
#   bash scripts/test.sh --slow   only the slow tests (real servers: MLflow on sqlite and on PostgreSQL + S3,
#                                 fault tests, whole pipelines, 1M-gallery memory; see .ci/run for timings)
#   bash scripts/test.sh --container   only the container suite (builds the image; needs docker or podman)
#   extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
marker="not slow and not container"
if [ "${1:-}" = "--slow" ]; then marker="slow and not container"; shift
elif [ "${1:-}" = "--container" ]; then marker="container"; shift; fi
exec python -m pytest -m "$marker" -p no:cacheprovider --timeout=900 "$@"
