#!/usr/bin/env bash
# The GPU check, as one script: the cuda tests, then both benchmarks, their figures
# printed and written as JSON. Runs on a machine with a GPU and only torch, torchvision and numpy:
#     bash benchmarks/gpu_check.sh            # from the repository root; under 5 minutes on an H100/H200
# Without a usable CUDA device it exits 1 at once with one line "no usable CUDA device: <reason>".
# Figures: $OUT/gpu_check/{gpu_train,extract_speed}.json when OUT is set, else a temporary folder it prints.
# pytest is used when it imports; otherwise benchmarks/run_cuda_tests.py runs tests/gpu itself.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/model${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
if ! reason=$("$PY" - 2>&1 <<'PYEOF'
import sys
try:
    import torch
except Exception as exc:  # noqa: BLE001
    sys.exit(f"torch does not import ({exc})")
if not torch.backends.cuda.is_built():
    sys.exit(f"this PyTorch build ({torch.__version__}) has no CUDA")
if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False (no GPU visible, or a driver too old)")
try:
    probe = torch.ones(8, device="cuda")
    float((probe @ probe).item())
except Exception as exc:  # noqa: BLE001
    sys.exit("a first CUDA kernel failed: " + " ".join(str(exc).split())[:200])
print("torch", torch.__version__, "CUDA", torch.version.cuda, "GPU", torch.cuda.get_device_name(0),
      "capability", torch.cuda.get_device_capability(0))
PYEOF
); then
    echo "no usable CUDA device: $(printf '%s' "$reason" | tail -n 1)" >&2
    exit 1
fi
echo "$reason"
if [ -n "${OUT:-}" ]; then figures="$OUT/gpu_check"; else figures="$(mktemp -d)/gpu_check"; fi
mkdir -p "$figures"
echo "figures (JSON): $figures"
status=0
echo "== cuda tests =="
"$PY" benchmarks/run_cuda_tests.py || status=1
echo "== benchmarks/gpu_train.py =="
"$PY" benchmarks/gpu_train.py --json "$figures/gpu_train.json" "$@" || status=1
echo "== benchmarks/extract_speed.py =="
"$PY" benchmarks/extract_speed.py --json "$figures/extract_speed.json" || status=1
exit $status
