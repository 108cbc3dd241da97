"""The tree passes ruff (lint and format) with the settings in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.skipif(not RUFF.exists(), reason="ruff is not installed in this environment")
@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    proc = subprocess.run([str(RUFF), *args], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_passes_on_the_checked_packages():
    """mypy (pinned in requirements-dev.txt) on the packages [tool.mypy] names: training, evaluation, data,
    deploy, stages and tracking."""
    mypy = Path(sys.executable).parent / "mypy"
    assert mypy.exists(), "mypy is not installed: install requirements-dev.txt (scripts/venv.sh does)"
    proc = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_no_file_opts_out_of_the_formatter():
    """The formatter decides the layout everywhere: no Python file carries a skip or off marker for it."""
    marker = "fmt" + ": "  # spelled apart, so this file does not match itself
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sorted(ROOT.rglob("*.py"))
        if not any(part in {".git", ".venv", "venv", "node_modules"} for part in p.parts)
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if marker + "skip" in line or marker + "off" in line
    ]
    assert hits == []
