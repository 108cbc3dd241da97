"""The evaluate stage with evaluate.rerank: both metric sets (re-ranked ones prefixed rerank_) in
metrics.json and the MLflow run, the re-ranked CMC curve as CSV, both curves in cmc.png."""

from __future__ import annotations

import csv
import json

import mlflow
import numpy as np
import pytest
from fixtures.rerank_reference import cosine, dense_reference

from spherereid.config import (
    DataConfig,
    EvaluateConfig,
    FitConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    SyntheticConfig,
    TrainConfig,
    TransformConfig,
)
from spherereid.evaluation.metrics import evaluate_distmat
from spherereid.evaluation.results import REPORTED_KEYS
from spherereid.stages import evaluate, preprocess, synthesize, train
from spherereid.tracking import runs

TRANSFORM = TransformConfig(resize_height=36, resize_width=18, crop_height=32, crop_width=16)


@pytest.mark.slow
def test_evaluate_stage_reports_plain_and_reranked_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    synthetic = SyntheticConfig(
        train_identities=8, test_identities=10, cameras=3, distractors=6, junk=3, height=36, width=18
    )
    synthesize.run(synthetic=synthetic, out_dir=tmp_path / "raw", workers=1)
    data = DataConfig(stored_height=36, stored_width=18, workers=1)
    preprocess.run(dataset="synthetic", raw_dir=tmp_path / "raw", out_dir=tmp_path / "prepared", data=data)
    train.run(
        prepared_dir=tmp_path / "prepared",
        out_dir=tmp_path / "train",
        config=FitConfig(
            model=ModelConfig(backbone="tiny", embedding_dim=16, pretrained="none"),
            loss=LossConfig(),
            sampler=SamplerConfig(p=4, k=2, batch_size=8),
            optim=OptimConfig(),
            schedule=ScheduleConfig(warmup_epochs=0, milestones=()),
            train=TrainConfig(epochs=1, device="cpu"),
            transform=TRANSFORM,
        ),
    )
    cfg = EvaluateConfig(max_rank=5, batch_size=32, rerank=True, rerank_k1=6, rerank_k2=2, rerank_lambda=0.3)
    res = evaluate.run(
        prepared_dir=tmp_path / "prepared",
        train_dir=tmp_path / "train",
        out_dir=tmp_path / "eval",
        evaluate=cfg,
        transform=TRANSFORM,
    )
    saved = json.loads((tmp_path / "eval" / "metrics.json").read_text())

    # Independent check: the dense reference on the saved features, ranked by the plain evaluator.
    f = np.load(tmp_path / "eval" / "features.npz")
    labels = (f["q_pids"], f["g_pids"], f["q_camids"], f["g_camids"])
    qf, gf = f["qf"], f["gf"]
    reference = dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf), 6, 2, 0.3)
    want = evaluate_distmat(reference, *labels, max_rank=5).to_dict()
    plain = evaluate_distmat(cosine(qf, gf), *labels, max_rank=5).to_dict()
    for key in REPORTED_KEYS:
        assert saved[f"rerank_{key}"] == res.metrics[f"rerank_{key}"] == pytest.approx(want[key], abs=1e-9)
        assert saved[key] == pytest.approx(plain[key], abs=1e-6)
    assert saved["rerank_mAP"] != saved["mAP"]

    with open(tmp_path / "eval" / "cmc_rerank.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["accuracy"]) for r in rows] == pytest.approx(want["cmc"], abs=1e-6)
    assert (tmp_path / "eval" / "cmc.png").stat().st_size > 0

    ref = runs.read_run_ref(tmp_path / "train" / train.RUN_FILE)
    logged = mlflow.MlflowClient().get_run(ref.run_id).data.metrics
    assert logged["rerank_mAP"] == pytest.approx(want["mAP"]) and logged["mAP"] == pytest.approx(saved["mAP"])
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(ref.run_id, "evaluation")}
    assert "evaluation/cmc_rerank.csv" in artifacts
    assert "evaluation/precision_check.json" in artifacts

    # the precision check: the plain (not re-ranked) figures of the chain's precision are metrics.json's
    check = json.loads((tmp_path / "eval" / "precision_check.json").read_text())
    chain = json.loads((tmp_path / "eval" / "chain.json").read_text())
    assert check["precision"] == chain["precision"] and check["protocol"] == "market"
    assert check[check["precision"]] == {"rank1": saved["rank1"], "mAP": saved["mAP"]}
    assert "fp32" not in saved and "difference" not in saved  # metrics.json holds the evaluated chain's only
