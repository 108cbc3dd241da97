#!/usr/bin/env bash
# The GPU check of issue 11, as one script: the cuda tests, then both benchmarks, printing their figures.
# Runs on a machine with a GPU and only torch, torchvision and numpy (no pip, no mlflow / dvc / kfp):
#     bash benchmarks/gpu_check.sh            # from the repository root; about 5-8 minutes on an H200
# pytest is used when it imports; otherwise benchmarks/run_cuda_tests.py runs tests/gpu itself.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/model${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
status=0
"$PY" - <<'PYEOF'
import torch
print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("GPU", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
PYEOF
echo "== cuda tests =="
"$PY" benchmarks/run_cuda_tests.py || status=1
echo "== benchmarks/gpu_train.py =="
"$PY" benchmarks/gpu_train.py "$@" || status=1
echo "== benchmarks/extract_speed.py =="
"$PY" benchmarks/extract_speed.py || status=1
exit $status
