"""`python -m pipeline run-local`: the same pipeline function under kfp.local on a tiny synthetic set.

Checks the Metrics artifact against an independent Market-1501 CMC/mAP computed here from the features the
evaluate stage saved, the HTML/Markdown reports, the lineage metadata, and the model registered in MLflow.
"""

import base64
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.tiny_params import tiny_params

ROOT = Path(__file__).resolve().parents[2]
PASSING_GATE = {"min_rank1": 0.0, "min_map": 0.0}  # this file checks a registered model


def _params(tmp_path: Path) -> Path:
    return tiny_params(tmp_path, register=PASSING_GATE)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "PYTHONPATH": path,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SPHEREREID_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run-local", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _market_cmc_map(features: Path) -> tuple[int, dict[str, float]]:
    """Market-1501 protocol, written independently: drop same-pid-same-camera and junk (-1) gallery items."""
    f = np.load(features)
    qf = f["qf"] / np.linalg.norm(f["qf"], axis=1, keepdims=True)
    gf = f["gf"] / np.linalg.norm(f["gf"], axis=1, keepdims=True)
    dist = 1.0 - qf @ gf.T
    first_hits, aps = [], []
    q_pids, q_cams, g_pids, g_cams = f["q_pids"], f["q_camids"], f["g_pids"], f["g_camids"]
    for i in range(len(qf)):
        order = np.argsort(dist[i], kind="stable")
        keep = [
            j for j in order if g_pids[j] != -1 and not (g_pids[j] == q_pids[i] and g_cams[j] == q_cams[i])
        ]
        match = np.array([g_pids[j] == q_pids[i] for j in keep])
        if not match.any():
            continue
        hits = np.flatnonzero(match)
        first_hits.append(hits[0])
        aps.append(np.mean([(n + 1) / (h + 1) for n, h in enumerate(hits)]))
    first = np.array(first_hits)
    ranks = {f"rank{k}": float((first < k).mean()) for k in (1, 5, 10)}
    return len(first), {**ranks, "mAP": float(np.mean(aps))}


def _output(task_dir: Path, name: str) -> dict:
    executor_output = json.loads((task_dir / "executor_output.json").read_text())
    return executor_output["artifacts"][name]["artifacts"][0]


@pytest.mark.slow
def test_run_local_trains_evaluates_and_registers_the_synthetic_set(tmp_path):
    from mlflow.tracking import MlflowClient

    proc = _cli(tmp_path, "--params", str(_params(tmp_path)), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    assert sorted(results) == ["synthetic"]
    run = Path(results["synthetic"]["dir"])
    assert run.is_relative_to(tmp_path / "out" / "kfp")

    # Metrics artifact == the stage's metrics.json == an independent computation from the saved features
    metrics = _output(run / "evaluate", "metrics")["metadata"]
    assert metrics == results["synthetic"]["metrics"]
    evaluation = Path(_output(run / "evaluate", "evaluation")["uri"])
    on_disk = json.loads((evaluation / "metrics.json").read_text())
    assert metrics == {k: float(v) for k, v in on_disk.items() if isinstance(v, int | float)}
    with open(Path(_output(run / "preprocess", "prepared")["uri"]) / "manifest.csv") as fh:
        queries = sum(row["split"] == "query" for row in csv.DictReader(fh))
    assert metrics["num_queries"] == queries == 6  # one query image per test identity
    valid, expected = _market_cmc_map(evaluation / "features.npz")
    assert metrics["num_valid_queries"] == valid
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key
    assert 0.0 <= metrics["mAP_official"] <= metrics["mAP"] <= 1.0

    # reports: the HTML embeds exactly the two PNGs the stage wrote; the Markdown is the preprocess report
    html = Path(_output(run / "evaluate", "report")["uri"]).read_text()
    for png in ("cmc.png", "ranked_lists.png"):
        assert base64.b64encode((evaluation / png).read_bytes()).decode() in html
    prepared = _output(run / "preprocess", "prepared")
    assert (
        Path(_output(run / "preprocess", "report")["uri"]).read_text()
        == (Path(prepared["uri"]) / "report.md").read_text()
    )
    assert prepared["metadata"]["origin"] == "generated"
    assert prepared["metadata"]["revision"] == "generated:seed=0"

    # the ints survived the Struct round trip: one epoch trained, and the MLflow run is the one registered
    trained = _output(run / "train", "trained")["metadata"]
    assert trained["epochs"] == 1 and trained["dataset"] == "synthetic"
    history = (Path(_output(run / "train", "trained")["uri"]) / "history.csv").read_text().splitlines()
    assert len(history) == 2
    registration = _output(run / "register", "registration")["metadata"]
    assert registration["run_id"] == trained["mlflow_run_id"]
    assert registration["passed_gate"] is True

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = client.get_registered_model("spherereid-synthetic")
    assert {alias: str(v) for alias, v in model.aliases.items()} == {"champion": "1", "challenger": "1"}
    version = client.get_model_version("spherereid-synthetic", "1")
    assert version.run_id == trained["mlflow_run_id"]
    assert sorted(registration["aliases"]) == ["challenger", "champion"]


def test_run_local_without_a_raw_source_fails_with_one_line(tmp_path):
    proc = _cli(
        tmp_path,
        "--params",
        str(_params(tmp_path)),
        "--out",
        str(tmp_path / "out"),
        "--datasets",
        "market1501",
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: local pipeline run failed:") and "preprocess" in last
    assert "\x1b[" not in last
    assert "no raw data source; pass raw_root" in proc.stderr  # the task log (on stderr) says why
    assert proc.stdout == ""
