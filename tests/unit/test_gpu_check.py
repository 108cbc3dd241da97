"""benchmarks/gpu_check.sh without a usable CUDA device: exit 1 at once with one line naming the reason."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_fails_fast_with_one_line_without_cuda(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("no usable CUDA device: "), done.stderr
    assert len(lines[0]) > len("no usable CUDA device: ") + 5  # a reason follows
    assert done.stdout == ""  # no test or benchmark started
    assert not (tmp_path / "gpu_check").exists()
