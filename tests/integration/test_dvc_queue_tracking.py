"""Queued and `--temp` DVC experiments log to the repository's own MLflow store.

`dvc exp run --queue` (then `dvc queue start`) and `dvc exp run --temp` run the stages in a temporary copy
of the repository under .dvc/tmp/exps/, deleted after the run; with MLFLOW_TRACKING_URI unset the runs and
registered versions must land in <repo>/mlflow.db all the same (tracking.client.repo_root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from fixtures.tiny_params import tiny_params
from test_dvc_pipeline import BIN, ROOT, _run

EXPERIMENTS = {"q-one-epoch": "1", "q-two-epochs": "2"}  # queued: name -> train.epochs
TEMP_EPOCHS = "3"  # the `--temp` experiment
QUEUE_WAIT_S = 1500


def _scratch_repo(dest: Path) -> dict[str, str]:
    """This repository's tracked files with tiny params in a fresh git repo, the data stages reproduced
    and committed (the experiments run train, evaluate and register); the environment to run DVC in."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if not rel.startswith(("data/", "outputs/")) and rel != "dvc.lock" and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    tiny_params(dest, register={"min_rank1": 0.0, "min_map": 0.0})
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SPHEREREID_LOG_LEVEL": "WARNING",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_BASELINE_REV", "DVC_EXP_NAME"):
        env.pop(name, None)  # the default store: <repo>/mlflow.db
    commit = [["git", "add", "-A"], ["git", "commit", "-qm", "baseline"]]
    for cmd in (["git", "init", "-q"], *commit, ["dvc", "repro", "preprocess@synthetic"], *commit):
        _run(cmd, dest, env)
    return env


def _wait_for_queue(dest: Path, env: dict[str, str]) -> str:
    """Poll `dvc queue status` until nothing is queued or running (bounded); return the last status."""
    deadline = time.monotonic() + QUEUE_WAIT_S
    while True:
        status = _run(["dvc", "queue", "status"], dest, env).stdout
        if "Queued" not in status and "Running" not in status:
            return status
        assert time.monotonic() < deadline, f"queue not done after {QUEUE_WAIT_S} s:\n{status}"
        time.sleep(5)


@pytest.mark.slow
def test_queued_and_temp_experiments_log_runs_and_versions_to_the_repository_store(tmp_path):
    from mlflow import MlflowClient

    dest = tmp_path / "repo"
    dest.mkdir()
    env = _scratch_repo(dest)
    for name, epochs in EXPERIMENTS.items():
        _run(
            [
                "dvc",
                "exp",
                "run",
                "--queue",
                "--name",
                name,
                "-S",
                "model.backbone=tiny",
                "-S",
                f"train.epochs={epochs}",
            ],
            dest,
            env,
        )
    try:
        _run(["dvc", "queue", "start"], dest, env)
        status = _wait_for_queue(dest, env)
    finally:
        subprocess.run(
            ["dvc", "queue", "stop", "--kill"], cwd=dest, env=env, capture_output=True, timeout=120
        )
    assert status.count("Success") == len(EXPERIMENTS), status
    _run(["dvc", "exp", "run", "--temp", "-S", f"train.epochs={TEMP_EPOCHS}"], dest, env)

    assert not list((dest / ".dvc" / "tmp" / "exps").rglob("mlflow.db"))
    client = MlflowClient(tracking_uri=f"sqlite:///{dest / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    epochs = sorted(run.data.params["train.epochs"] for run in runs)
    assert epochs == sorted([*EXPERIMENTS.values(), TEMP_EPOCHS])
    versions = client.search_model_versions("name = 'spherereid-synthetic'")
    assert sorted(v.run_id for v in versions) == sorted(run.info.run_id for run in runs)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert "rank1" in run.data.metrics
        artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
        assert artifacts.is_relative_to(dest / "mlartifacts") and artifacts.is_dir()
