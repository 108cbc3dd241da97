"""`spherereid ablation --dvc-queue`: one `dvc exp run --queue` per cell, whose -S flags give the cell's
params; the commands are accepted by a real `dvc exp run --queue` in a scratch repository."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from spherereid import cli
from spherereid.config import load_params
from spherereid.experiments.overrides import apply_overrides, parse_assignments

ROOT = Path(__file__).resolve().parents[2]


def _queue_lines(capsys, *args: str) -> list[str]:
    assert (
        cli.main(["ablation", "--params", str(ROOT / "params.yaml"), "--out", "unused", "--dvc-queue", *args])
        == 0
    )
    return capsys.readouterr().out.strip().splitlines()


def _flags(line: str) -> tuple[str, dict[str, str]]:
    words = shlex.split(line)
    assert words[:4] == ["dvc", "exp", "run", "--queue"] and words[4] == "--name"
    sets = [words[i + 1] for i, w in enumerate(words) if w == "-S"]
    return words[5], parse_assignments(sets)


def test_one_command_per_cell_with_its_params_and_the_overrides(capsys):
    lines = _queue_lines(capsys, "--set", "train.epochs=5")
    assert len(lines) == 17
    names = [_flags(line)[0] for line in lines]
    assert names[0] == "abl-A-softmax-warmup-balanced" and names[-1] == "abl-D-sphere-warmup-random"
    base = load_params(ROOT / "params.yaml")
    name, sets = _flags(lines[1])  # A, softmax, warm-up off, balanced
    assert name == "abl-A-softmax-nowarmup-balanced"
    cell = apply_overrides(base, sets)
    assert (cell.model.head, cell.loss.type, cell.schedule.warmup_epochs, cell.sampler.type) == (
        "A",
        "softmax",
        0,
        "balanced",
    )
    assert cell.train.epochs == 5 and cell.schedule.milestones == base.schedule.milestones
    full = apply_overrides(base, _flags(lines[-1])[1])
    assert full.schedule.warmup_epochs == base.schedule.warmup_epochs and full.sampler.type == "random"


def test_grid_narrows_the_queue(capsys):
    lines = _queue_lines(capsys, "--grid", "head=D", "--grid", "loss=sphere")
    assert [_flags(line)[0] for line in lines] == [
        "abl-D-sphere-warmup-balanced",
        "abl-D-sphere-nowarmup-balanced",
        "abl-D-sphere-warmup-random",
    ]


@pytest.mark.slow
def test_dvc_accepts_the_queued_cells(tmp_path, capsys):
    """Two cells queued in a scratch git+DVC repository with this params.yaml and dvc.yaml."""
    dvc = Path(sys.executable).parent / "dvc"
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for cmd in (
        ["git", "init", "-q"],
        [str(dvc), "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    lines = _queue_lines(capsys, "--grid", "head=A", "--grid", "loss=softmax")
    for line in lines:
        words = shlex.split(line)
        subprocess.run([str(dvc), *words[1:]], cwd=tmp_path, env=env, check=True, capture_output=True)
    status = subprocess.run(
        [str(dvc), "queue", "status"], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    ).stdout
    assert "abl-A-softmax-warmup-balanced" in status and "abl-A-softmax-nowarmup-balanced" in status
    assert status.count("Queued") == 2
