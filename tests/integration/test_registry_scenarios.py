"""Trust scenarios through the real DVC pipeline on a tiny config (sqlite MLflow store): the registry
serves exactly the model it evaluated, and says so.

In order, on one repository copy (each scenario starts from the state the previous one left):
1. the main job: a model card, the run's datasets and system metrics; `mlflow models serve` of the
   champion, fed the raw query files, returns features.npz's qf;
2. fewer epochs than the checkpoint holds: trained from scratch, a new run and version with those params;
3. changed training code, same params: a new run and a new version whose served embeddings are the new
   features.npz; the older version keeps its own tags;
4. a new dataset version: champion stays, register says what to do, `spherereid promote` moves it;
5. `dvc push` to an S3 remote (moto), a fresh clone, `dvc pull`: `dvc status` reports nothing to rerun.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_dvc_pipeline import BIN, ROOT, _run, _tiny_params
from test_serving import post_images, served

NAME = "spherereid-synthetic"
PARITY_TOLERANCE = 1e-4
OUT = Path("outputs") / "synthetic"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of this repository's tracked files in a fresh git repo with tiny params, after `dvc repro`."""
    dest = tmp_path_factory.mktemp("trust-repo")
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for rel in files:
        if rel.startswith(("data/", "outputs/")) or rel == "dvc.lock":
            continue
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(_tiny_params(ROOT / "params.yaml"), sort_keys=False))
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(dest / "model"),  # the stages run the copy's code (scenario 3 changes it)
        "MLFLOW_TRACKING_URI": f"sqlite:///{dest / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "0.2",
        "SPHEREREID_LOG_LEVEL": "INFO",
        "OMP_NUM_THREADS": "1",
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


def _client(env):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def _registration(dest: Path) -> dict:
    return json.loads((dest / OUT / "register" / "registration.json").read_text())


def _query_files(dest: Path) -> list[Path]:
    """The raw files of the prepared query split, in features.npz order (manifest index)."""
    raw = dest / "data" / "raw" / "synthetic"
    with open(dest / "data" / "prepared" / "synthetic" / "manifest.csv", newline="") as fh:
        rows = sorted((int(r["index"]), r["source"]) for r in csv.DictReader(fh) if r["split"] == "query")
    files = []
    for _, source in rows:
        path = raw / source
        if not path.is_file():
            found = list(raw.rglob(Path(source).name))
            assert len(found) == 1, (source, found)
            path = found[0]
        files.append(path)
    return files


def _served_query_features(dest: Path, env: dict, model_uri: str, server_tools, workdir: Path) -> np.ndarray:
    files = _query_files(dest)
    with served(model_uri, env["MLFLOW_TRACKING_URI"], workdir, server_tools) as url:
        rows = []
        for i in range(0, len(files), 32):
            resp = post_images(url, [f.read_bytes() for f in files[i : i + 32]])
            assert resp.status_code == 200, resp.text[-2000:]
            rows.extend(resp.json()["predictions"])
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.slow
def test_main_job_version_has_a_card_datasets_and_system_metrics_and_serves_the_evaluated_features(
    repo, server_tools, tmp_path
):
    dest, env = repo
    reg = _registration(dest)
    c = _client(env)
    metrics = json.loads((dest / OUT / "eval" / "metrics.json").read_text())
    card = c.get_model_version(NAME, str(reg["version"])).description
    (tmp_path.parent / "main-job-model-card.md").write_text(card)  # kept for the closing note
    assert card.startswith(f"# {NAME} version {reg['version']}\n")
    row = " | ".join(f"{metrics[k]:.4f}" for k in ("rank1", "rank5", "rank10", "mAP", "mAP_official", "mINP"))
    assert f"| {row} |" in card
    lineage = json.loads((dest / OUT / "train" / "lineage.json").read_text())
    assert (
        f"`{lineage['dataset_hash']}`" in card and "| epochs | 2 |" in card and "| backbone | tiny |" in card
    )
    assert f"mlflow models serve -m models:/{NAME}/{reg['version']}" in card
    assert "Intended use and limits" in card and "Quality gate: **passed**" in card

    run = c.get_run(reg["run_id"])
    contexts = {
        (d.dataset.name, d.dataset.digest, t.value)
        for d in run.inputs.dataset_inputs
        for t in d.tags
        if t.key == "mlflow.data.context"
    }
    digest = lineage["dataset_hash"]
    assert contexts == {
        ("synthetic-train", digest, "train"),
        ("synthetic-query", digest, "query"),
        ("synthetic-gallery", digest, "gallery"),
        ("synthetic-evaluation", digest, "evaluation"),  # register: the set the LoggedModel's metrics name
    }
    assert any(k.startswith("system/cpu_utilization_percentage") for k in run.data.metrics), run.data.metrics
    assert any(k.startswith("system/system_memory_usage_megabytes") for k in run.data.metrics)

    qf = np.load(dest / OUT / "eval" / "features.npz")["qf"]
    out = _served_query_features(dest, env, f"models:/{NAME}@champion", server_tools, tmp_path)
    assert out.shape == qf.shape
    diff = float(np.abs(out - qf).max())
    print(f"served-vs-evaluated max abs difference over {len(qf)} query files: {diff:.3g}")
    (tmp_path.parent / "served-vs-evaluated.txt").write_text(f"{diff:.6g} over {len(qf)} queries\n")
    assert diff <= PARITY_TOLERANCE


@pytest.mark.slow
def test_fewer_epochs_than_the_checkpoint_trains_from_scratch_in_a_new_run_and_version(repo):
    dest, env = repo
    before = _registration(dest)
    proc = _run(["dvc", "exp", "run", "-S", "train.epochs=1"], dest, env)
    assert "resuming from" not in proc.stderr and "holds 2 epochs but 1 were asked" in proc.stderr
    history = (dest / OUT / "train" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 1
    reg = _registration(dest)
    assert reg["run_id"] != before["run_id"] and reg["version"] == before["version"] + 1
    c = _client(env)
    run = c.get_run(reg["run_id"])
    assert run.data.params["train.epochs"] == "1" and len(c.get_metric_history(reg["run_id"], "loss")) == 1
    # the earlier version still describes the earlier (2-epoch) run
    assert c.get_model_version(NAME, str(before["version"])).tags["run_id"] == before["run_id"]
    assert c.get_run(before["run_id"]).data.params["train.epochs"] == "2"


@pytest.mark.slow
def test_changed_training_code_with_the_same_params_is_a_new_run_and_version_served_as_evaluated(
    repo, server_tools, tmp_path
):
    dest, env = repo
    before = _registration(dest)
    old_qf = np.load(dest / OUT / "eval" / "features.npz")["qf"]
    trainer = dest / "model" / "spherereid" / "training" / "trainer.py"
    code = trainer.read_text()
    assert "torch.manual_seed(seed)" in code  # the change below alters the initial weights
    trainer.write_text(code.replace("torch.manual_seed(seed)", "torch.manual_seed(seed + 1)", 1))
    _run(["dvc", "repro"], dest, env)
    reg = _registration(dest)
    assert reg["run_id"] != before["run_id"] and reg["version"] == before["version"] + 1
    assert reg["model_uri"] != before["model_uri"]
    c = _client(env)
    old = c.get_model_version(NAME, str(before["version"]))
    assert old.tags["run_id"] == before["run_id"] and old.source == before["model_uri"]
    assert float(old.tags["mAP"]) == pytest.approx(before["metrics"]["mAP"])

    qf = np.load(dest / OUT / "eval" / "features.npz")["qf"]
    assert np.abs(qf - old_qf).max() > 1e-3  # the new code trained another model
    out = _served_query_features(dest, env, f"models:/{NAME}/{reg['version']}", server_tools, tmp_path)
    assert np.abs(out - qf).max() <= PARITY_TOLERANCE


@pytest.mark.slow
def test_a_new_dataset_version_keeps_the_champion_says_what_to_do_and_promote_moves_it(repo):
    dest, env = repo
    champion = int(_client(env).get_registered_model(NAME).aliases["champion"])
    _run(["dvc", "exp", "run", "-S", "synthetic.seed=1"], dest, env)
    reg = _registration(dest)
    assert reg["passed_gate"] and reg["champion_version"] == champion != reg["version"]
    assert "new dataset version" in reg["reason"]
    assert f"spherereid promote --name {NAME} --version {reg['version']} --reason TEXT" in reg["reason"]
    proc = _run(
        [
            str(BIN / "spherereid"),
            "promote",
            "--name",
            NAME,
            "--version",
            str(reg["version"]),
            "--reason",
            "new synthetic data",
        ],
        dest,
        {**env, "SPHEREREID_USER": "dana"},
    )
    assert f"is now champion (was version {champion}); by dana: new synthetic data" in proc.stdout
    c = _client(env)
    assert int(c.get_registered_model(NAME).aliases["champion"]) == reg["version"]
    tags = c.get_model_version(NAME, str(reg["version"])).tags
    assert (tags["promoted_by"], tags["promotion_reason"]) == ("dana", "new synthetic data")


@pytest.mark.slow
def test_a_pull_on_another_machine_has_nothing_to_rerun(repo, moto_s3, tmp_path):
    dest, env = repo
    s3_env = {
        **env,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    moto_s3.client().create_bucket(Bucket="dvc-store")
    _run(["dvc", "remote", "add", "-d", "store", "s3://dvc-store/repo"], dest, s3_env)
    _run(["dvc", "remote", "modify", "store", "endpointurl", moto_s3.endpoint], dest, s3_env)
    _run(["git", "add", "-A"], dest, s3_env)
    _run(["git", "commit", "-qm", "results"], dest, s3_env)
    assert "up to date" in _run(["dvc", "status"], dest, s3_env).stdout
    _run(["dvc", "push"], dest, s3_env)

    clone = tmp_path / "elsewhere"
    _run(["git", "clone", "-q", str(dest), str(clone)], tmp_path, s3_env)
    assert not (clone / OUT / "train" / "mlflow_run.json").exists()
    _run(["dvc", "pull"], clone, s3_env)
    status = _run(["dvc", "status"], clone, s3_env).stdout
    assert "Data and pipelines are up to date." in status, status
    for rel in (
        "train/mlflow_run.json",
        "train/checkpoints/last.pt",
        "register/registration.json",
        "eval/chain.json",
        "train/model.pt",
    ):
        assert (clone / OUT / rel).is_file(), rel
