"""The cross-dataset matrix through `dvc repro`: two tiny synthetic domains -> a 2x2 matrix tracked by DVC;
and the same params through the KFP pipeline (`python -m pipeline run-local`): the same matrix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_dvc_pipeline import BIN, ROOT, _run, _tiny_params


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """This repository's tracked files in a fresh git repo; tiny params, datasets [synthetic, synthetic_b]."""
    dest = tmp_path_factory.mktemp("cross")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if not rel.startswith(("data/", "outputs/")) and rel != "dvc.lock" and (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    params = _tiny_params(ROOT / "params.yaml")
    params["datasets"] = ["synthetic", "synthetic_b"]
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
        ["dvc", "repro"],
    ):
        _run(cmd, dest, env)
    return dest, env


@pytest.mark.slow
def test_repro_writes_a_2x2_matrix_whose_diagonal_is_the_evaluate_stage(repo):
    dest, env = repo
    matrix = json.loads((dest / "outputs/cross/matrix.json").read_text())
    assert sorted(matrix) == ["synthetic", "synthetic_b"]
    for train in matrix:
        assert sorted(matrix[train]) == ["synthetic", "synthetic_b"]
        own = json.loads((dest / f"outputs/{train}/eval/metrics.json").read_text())
        assert matrix[train][train]["rank1"] == pytest.approx(own["rank1"])
        assert matrix[train][train]["mAP"] == pytest.approx(own["mAP"])
        for cell in matrix[train].values():
            assert 0.0 <= cell["mAP"] <= 1.0 and 0.0 <= cell["rank1"] <= 1.0
    md = (dest / "outputs/cross/matrix.md").read_text()
    assert "synthetic_b" in md and "missing" not in md
    assert (dest / "outputs/cross/matrix.png").stat().st_size > 1000
    shown = _run(["dvc", "metrics", "show", "--json"], dest, env).stdout
    assert "outputs/cross/matrix.json" in shown
    assert (
        "up to date" in _run(["dvc", "status"], dest, env).stdout.lower()
        or "matrix" not in _run(["dvc", "status"], dest, env).stdout
    )


@pytest.mark.slow
def test_each_registered_version_carries_its_xeval_tags(repo):
    from mlflow import MlflowClient

    dest, env = repo
    c = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    matrix = json.loads((dest / "outputs/cross/matrix.json").read_text())
    for train in matrix:
        reg = json.loads((dest / f"outputs/{train}/register/registration.json").read_text())
        tags = c.get_model_version(reg["name"], str(reg["version"])).tags
        for test, cell in matrix[train].items():
            assert float(tags[f"xeval.{test}.rank1"]) == pytest.approx(cell["rank1"], abs=1e-4)
            assert float(tags[f"xeval.{test}.mAP"]) == pytest.approx(cell["mAP"], abs=1e-4)


@pytest.mark.slow
def test_each_model_card_gains_the_cross_dataset_table_once(repo):
    from mlflow import MlflowClient

    dest, env = repo
    c = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    matrix = json.loads((dest / "outputs/cross/matrix.json").read_text())
    for train in matrix:
        reg = json.loads((dest / f"outputs/{train}/register/registration.json").read_text())
        card = c.get_model_version(reg["name"], str(reg["version"])).description
        assert card.count("## Cross-dataset evaluation") == 1
        assert card.startswith("# ") and "## Evaluation" in card  # the registration's card is kept
        for test, cell in matrix[train].items():
            label = f"{test} (own)" if test == train else test
            assert f"| {label} | {100 * cell['rank1']:.2f}% | {100 * cell['mAP']:.2f}% |" in card


@pytest.mark.slow
def test_kfp_local_gives_the_dvc_matrix(repo, tmp_path):
    """The pipeline's cross_evaluate tasks and matrix task on the same params.yaml: the same 2x2 matrix as
    `dvc repro` (both run the same stages on this machine), its diagonal the evaluate tasks' metrics, the
    Markdown artifact the matrix.md, and each registered version tagged xeval.* (a store of its own).
    About 1 minute on 2 idle cores (12 kfp.local tasks, each a fresh interpreter); over 15 when loaded."""
    from mlflow import MlflowClient

    from pipeline.run_local import read_matrix

    dest, env = repo
    uri = f"sqlite:///{tmp_path / 'kfp-mlflow.db'}"
    kfp_env = {
        **env,
        "MLFLOW_TRACKING_URI": uri,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(dest), env.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "run-local",
        "--params",
        str(dest / "params.yaml"),
        "--out",
        str(tmp_path / "kfp"),
    ]
    proc = subprocess.run(cmd, cwd=dest, env=kfp_env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    assert sorted(results) == ["synthetic", "synthetic_b"]  # both chains registered (the gate is 0)
    run_dir = Path(results["synthetic"]["dir"]).parent
    kfp_matrix = read_matrix(run_dir)
    dvc_matrix = json.loads((dest / "outputs/cross/matrix.json").read_text())
    assert sorted(kfp_matrix) == sorted(dvc_matrix) == ["synthetic", "synthetic_b"]
    for train, row in kfp_matrix.items():
        assert sorted(row) == sorted(dvc_matrix[train]) == ["synthetic", "synthetic_b"]
        assert row == results[train]["cross"]
        for test, cell in row.items():
            assert cell.keys() == dvc_matrix[train][test].keys()
            for key, value in cell.items():
                assert value == pytest.approx(dvc_matrix[train][test][key], abs=1e-6), (train, test, key)
        for key in ("rank1", "mAP", "mAP_official", "mINP"):  # the diagonal is the evaluate task's
            assert row[train][key] == pytest.approx(results[train]["metrics"][key], abs=1e-12), (train, key)
    report = json.loads((run_dir / "matrix" / "executor_output.json").read_text())["artifacts"]["report"]
    cross_md = Path(report["artifacts"][0]["uri"]).read_text()
    assert cross_md == (Path(report["artifacts"][0]["uri"]).parent / "cross" / "matrix.md").read_text()
    assert "missing" not in cross_md and "synthetic_b" in cross_md
    c = MlflowClient(tracking_uri=uri)
    for train, row in kfp_matrix.items():
        reg = results[train]["registration"]
        tags = c.get_model_version(reg["name"], str(reg["version"])).tags
        for test, cell in row.items():
            assert float(tags[f"xeval.{test}.rank1"]) == pytest.approx(cell["rank1"], abs=1e-4)
            assert float(tags[f"xeval.{test}.mAP"]) == pytest.approx(cell["mAP"], abs=1e-4)
        card = c.get_model_version(reg["name"], str(reg["version"])).description
        assert card.count("## Cross-dataset evaluation") == 1 and f"| {train} (own) |" in card
