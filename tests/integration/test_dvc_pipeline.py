"""The main job end to end: `dvc repro` on a tiny synthetic set, then outputs, metrics and registry state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

TINY = {
    "synthetic": {
        "train_identities": 16,
        "test_identities": 12,
        "distractors": 6,
        "junk": 4,
        "height": 64,
        "width": 32,
        "images_per_camera": 2,
    },
    "data": {"stored_height": 36, "stored_width": 18},
    "transform": {"resize_height": 36, "resize_width": 18, "crop_height": 32, "crop_width": 16},
    "model": {"backbone": "tiny", "embedding_dim": 32},
    "sampler": {"p": 4, "k": 4, "batch_size": 16},
    "schedule": {"warmup_epochs": 1, "milestones": [2]},
    "train": {"epochs": 2},
    "evaluate": {"max_rank": 10},
    "register": {"min_rank1": 0.0, "min_map": 0.0},
}


def _tiny_params(src: Path) -> dict:
    raw = yaml.safe_load(src.read_text())
    for section, values in TINY.items():
        raw[section].update(values)
    return raw


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of this repository's tracked files in a fresh git repo, with tiny params."""
    dest = tmp_path_factory.mktemp("repo")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if rel.startswith(("data/", "outputs/")) or rel == "dvc.lock":
            continue
        target = dest / rel
        if (ROOT / rel).is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target)
    (dest / "params.yaml").write_text(yaml.safe_dump(_tiny_params(ROOT / "params.yaml"), sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{dest / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SPHEREREID_LOG_LEVEL": "WARNING",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    _run(["git", "init", "-q"], dest, env)
    _run(["git", "add", "-A"], dest, env)
    _run(["git", "commit", "-qm", "init"], dest, env)
    _run(["dvc", "repro"], dest, env)
    return dest, env


@pytest.mark.slow
def test_repro_writes_every_stage_output(repo):
    dest, _ = repo
    ds = dest / "outputs" / "synthetic"
    for rel in (
        "train/model.pt",
        "train/history.csv",
        "train/mlflow_run.json",
        "eval/metrics.json",
        "eval/cmc.csv",
        "eval/cmc.png",
        "eval/ranked_lists.png",
        "register/registration.json",
    ):
        assert (ds / rel).is_file(), rel
    history = (ds / "train" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + TINY["train"]["epochs"]
    metrics = json.loads((ds / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["mAP_official"] <= metrics["mAP"] <= 1.0
    assert metrics["rank1"] <= metrics["rank5"] <= metrics["rank10"]
    assert metrics["num_queries"] >= metrics["num_valid_queries"] > 0
    cmc = (ds / "eval" / "cmc.csv").read_text().splitlines()
    assert len(cmc) == 1 + TINY["evaluate"]["max_rank"]
    lock = yaml.safe_load((dest / "dvc.lock").read_text())
    assert {
        "synthesize",
        "preprocess@synthetic",
        "train@synthetic",
        "evaluate@synthetic",
        "register@synthetic",
    } <= set(lock["stages"])


@pytest.mark.slow
def test_registry_holds_the_version_with_aliases_and_lineage(repo):
    dest, env = repo
    from mlflow import MlflowClient

    reg = json.loads((dest / "outputs" / "synthetic" / "register" / "registration.json").read_text())
    run_ref = json.loads((dest / "outputs" / "synthetic" / "train" / "mlflow_run.json").read_text())
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    model = client.get_registered_model("spherereid-synthetic")
    assert model.aliases.get("champion") == str(reg["version"]) or int(model.aliases["champion"]) == int(
        reg["version"]
    )
    version = client.get_model_version("spherereid-synthetic", str(reg["version"]))
    assert version.run_id == run_ref["run_id"]
    assert {"dataset_hash", "params_hash", "git_commit"} <= set(version.tags)
    run = client.get_run(run_ref["run_id"])
    assert run.data.params["model.backbone"] == "tiny"
    assert "rank1" in run.data.metrics and "mAP_official" in run.data.metrics
    losses = client.get_metric_history(run_ref["run_id"], "loss")
    assert len(losses) == TINY["train"]["epochs"]


@pytest.mark.slow
def test_second_repro_is_a_no_op_and_metrics_show_works(repo):
    dest, env = repo
    out = _run(["dvc", "repro"], dest, env).stdout
    assert "didn't change" in out or "up to date" in out.lower()
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], dest, env).stdout)
    text = json.dumps(shown)
    assert "rank1" in text and "mAP" in text


@pytest.mark.slow
def test_kfp_local_run_gives_the_same_numbers_as_the_dvc_path(repo, tmp_path):
    """Same params and seed through kfp.local (the KFP path) -> the same metrics as `dvc repro`."""
    dest, env = repo
    kfp_env = {
        **env,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'kfp-mlflow.db'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    }
    proc = _run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run-local",
            "--params",
            str(dest / "params.yaml"),
            "--out",
            str(tmp_path / "kfp"),
        ],
        ROOT,
        kfp_env,
    )
    kfp_metrics = json.loads(proc.stdout)["synthetic"]["metrics"]
    dvc_metrics = json.loads((dest / "outputs" / "synthetic" / "eval" / "metrics.json").read_text())
    for key in (
        "rank1",
        "rank5",
        "rank10",
        "mAP",
        "mAP_official",
        "mINP",
        "num_valid_queries",
        "num_queries",
    ):
        assert kfp_metrics[key] == pytest.approx(dvc_metrics[key], abs=1e-9), key


@pytest.mark.slow
def test_exp_run_with_a_changed_param_trains_again_and_metrics_diff_reports_it(repo):
    """`dvc exp run -S train.epochs=3`: retrains (3 epochs in the history) and `dvc metrics diff` works."""
    dest, env = repo
    _run(["dvc", "exp", "run", "-S", "train.epochs=3"], dest, env)
    history = (dest / "outputs" / "synthetic" / "train" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3
    diff = json.loads(_run(["dvc", "metrics", "diff", "--json"], dest, env).stdout)
    assert "outputs/synthetic/eval/metrics.json" in diff
    shown = json.dumps(json.loads(_run(["dvc", "exp", "show", "--json"], dest, env).stdout))
    assert '"epochs": 3' in shown
