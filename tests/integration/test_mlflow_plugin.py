"""Against a real `mlflow server` on 127.0.0.1: KFP's MLflow plugin variables (MLFLOW_RUN_ID,
MLFLOW_EXPERIMENT_ID, KFP_RUN_ID) make the training run a child of the plugin's task run, in the plugin's
experiment (one run tree, no spherereid-<dataset> experiment), lineage tags and the registry still work,
and register's metrics on the LoggedModel let search_logged_models rank two versions by mAP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.stages import register as register_stage
from spherereid.tracking import logged_model
from spherereid.tracking import runs as tracking

METRICS = {"rank1": 0.8, "rank5": 0.9, "mAP": 0.6, "num_queries": 10.0}


def _train_and_register(tmp_path: Path, make_train_dir, name: str, m_ap: float, seed: int):
    train_dir, eval_dir = tmp_path / name / "train", tmp_path / name / "eval"
    make_train_dir(train_dir, seed=seed)
    ref = tracking.start_or_resume_run(
        train_dir / "mlflow_run.json",
        experiment="spherereid-toy",
        run_name=name,
        params={"model": {"seed": seed}},
        tags={"dataset": "toy", "params_hash": f"ph{seed}", "git_commit": "gc"},
    )
    eval_dir.mkdir(parents=True)
    (eval_dir / "metrics.json").write_text(json.dumps({**METRICS, "mAP": m_ap}))
    chain = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)
    (eval_dir / "chain.json").write_text(json.dumps(chain.to_dict()))
    res = register_stage.run(
        train_dir=train_dir,
        eval_dir=eval_dir,
        out_dir=tmp_path / name / "reg",
        register=RegisterConfig(min_rank1=0.5, min_map=0.3, promotion="best"),
    )
    return ref, res


@pytest.mark.slow
def test_plugin_run_tree_and_models_ranked_by_map(mlflow_server, tmp_path, make_train_dir, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    c = MlflowClient(tracking_uri=mlflow_server.uri)
    # what the plugin makes: an experiment, a parent run per KFP run, a nested run per task
    exp = c.create_experiment("kfp-team")
    parent = c.create_run(exp, run_name="kfp-run").info.run_id
    task = c.create_run(exp, run_name="train", tags={"mlflow.parentRunId": parent}).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", task)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", exp)
    monkeypatch.setenv("KFP_RUN_ID", "kfp-123")

    ref, first = _train_and_register(tmp_path, make_train_dir, "v1", m_ap=0.6, seed=0)
    assert ref.experiment_id == exp
    run = c.get_run(ref.run_id)
    assert run.data.tags["mlflow.parentRunId"] == task and run.data.tags["kfp_run_id"] == "kfp-123"
    assert run.data.tags["registered_model"] == "spherereid-toy" and run.info.status == "FINISHED"
    assert c.get_experiment_by_name("spherereid-toy") is None  # no second run tree
    tree = {r.info.run_id: r.data.tags.get("mlflow.parentRunId") for r in c.search_runs([exp])}
    assert tree == {parent: None, task: parent, ref.run_id: task}
    version = c.get_model_version("spherereid-toy", str(first.version))
    assert (version.run_id, version.tags["dataset"], version.tags["params_hash"]) == (
        ref.run_id,
        "toy",
        "ph0",
    )
    assert float(version.tags["mAP"]) == 0.6  # metrics as version tags too

    # a second pipeline run's train task (its own process on a cluster: mlflow's fluent end_run, used by
    # log_model, clears MLFLOW_RUN_ID in this one)
    task2 = c.create_run(exp, run_name="train", tags={"mlflow.parentRunId": parent}).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", task2)
    _, second = _train_and_register(tmp_path, make_train_dir, "v2", m_ap=0.7, seed=1)
    assert c.get_experiment_by_name("spherereid-toy") is None
    ranked = logged_model.ranked_models(exp, "mAP")
    by_id = {m.model_id: m for m in ranked}
    ids = [logged_model.model_id_of(r.model_uri) for r in (second, first)]
    assert [m.model_id for m in ranked] == ids  # 0.7 before 0.6
    metrics = {m.key: m for m in by_id[ids[0]].metrics}
    assert metrics["mAP"].value == 0.7 and metrics["rank1"].value == 0.8
    assert metrics["mAP"].dataset_name == "toy-evaluation" and metrics["mAP"].dataset_digest == "hash-a"
    inputs = c.get_run(ref.run_id).inputs.dataset_inputs
    assert "toy-evaluation" in {d.dataset.name for d in inputs}
