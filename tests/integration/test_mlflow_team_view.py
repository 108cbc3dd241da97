"""What a team sees in the MLflow UI, against a real `mlflow server` (sqlite backend, proxied S3 artifacts
on moto): the training layout tag on the experiment, a LoggedModel named for what it is that knows its
registered version, and only the evaluated metrics on it (no epoch, learning-rate or system metrics)."""

from __future__ import annotations

import json

import pytest

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.stages import register as register_stage
from spherereid.tracking import client as mlflow_client
from spherereid.tracking import runs as tracking

pytestmark = pytest.mark.slow

CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)
EVALUATED = {"rank1": 0.8, "rank5": 0.9, "rank10": 0.95, "mAP": 0.6, "mAP_official": 0.55, "mINP": 0.3}


def _trained_and_evaluated(tmp_path, make_train_dir):
    """A tiny model.pt in a run that logged training noise at step 0 (as the spool does for epoch 0), and
    the evaluate stage's files."""
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    make_train_dir(train_dir, seed=0)
    ref = tracking.start_or_resume_run(
        train_dir / "mlflow_run.json",
        experiment="spherereid-toy",
        run_name="toy",
        params={"model.backbone": "tiny"},
        tags={"dataset": "toy"},
    )
    tracking.log_metrics(ref, {"loss": 5.3, "accuracy": 0.01, "lr": 5e-5, "images_per_second": 99.0}, step=0)
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({**EVALUATED, "protocol": "market"}))
    (eval_dir / "chain.json").write_text(json.dumps(CHAIN.to_dict()))
    check = {
        "precision": "fp32",
        "fp32": {"rank1": 0.8, "mAP": 0.6},
        "difference": {"rank1": 0.0, "mAP": 0.0},
    }
    (eval_dir / "precision_check.json").write_text(json.dumps(check))
    return ref, train_dir, eval_dir


def test_the_models_view_on_the_teams_server(mlflow_server, tmp_path, monkeypatch, make_train_dir):
    """A server (sqlite, and PostgreSQL + S3) writes the version link itself; we must not add a second."""
    _check_the_models_view(mlflow_server.uri, tmp_path, monkeypatch, make_train_dir)


def test_the_models_view_on_the_main_jobs_local_store(tmp_path, monkeypatch, make_train_dir):
    """The main job's sqlite store: no server writes the version link, register does."""
    _check_the_models_view(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, monkeypatch, make_train_dir)


def _check_the_models_view(store_uri, tmp_path, monkeypatch, make_train_dir):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    c = mlflow_client.client(store_uri)
    old = c.create_experiment("spherereid-toy")  # an experiment made before the tag existed
    assert "mlflow.experimentKind" not in (c.get_experiment(old).tags or {})

    ref, train_dir, eval_dir = _trained_and_evaluated(tmp_path, make_train_dir)
    cfg = RegisterConfig(model_prefix="spherereid", min_rank1=0.5, min_map=0.3)
    res = register_stage.run(train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg)

    assert ref.experiment_id == old
    assert c.get_experiment(old).tags["mlflow.experimentKind"] == "custom_model_development"
    [model] = c.search_logged_models(experiment_ids=[old])
    assert model.name == "spherereid-toy-tiny-D"
    assert model.source_run_id == ref.run_id and model.model_id in res.model_uri
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": "spherereid-toy", "version": 1}]
    on_model = {(m.key, m.dataset_name) for m in model.metrics}
    assert on_model == {(k, "toy-evaluation") for k in EVALUATED}  # once each, on the evaluated set
    assert {m.key: m.value for m in model.metrics} == EVALUATED
    outputs = c.get_run(ref.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [model.model_id]  # the run lists it as its output

    record = json.loads((tmp_path / "reg" / "registration.json").read_text())
    pages = record["mlflow_ui"]
    base = store_uri if store_uri.startswith("http") else "http://127.0.0.1:5000"
    assert pages["models"] == f"{base}/#/experiments/{old}/models?workflowType=machine_learning"
    assert pages["runs"] == f"{base}/#/experiments/{old}/runs?workflowType=machine_learning"
    assert pages["version"] == f"{base}/#/models/spherereid-toy/versions/1?workflowType=machine_learning"
    assert pages["models"] in register_stage.summary(res)

    # registering the same model again (a rerun of the stage) keeps one link and one value of each metric
    register_stage.run(train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg", register=cfg)
    [model] = c.search_logged_models(experiment_ids=[old])
    assert sorted(m.key for m in model.metrics) == sorted(EVALUATED)
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": "spherereid-toy", "version": 1}]
