"""Real on-disk formats through preprocess -> train -> evaluate: the protocol each dataset declares reaches
the evaluation (CUHK-SYSU TestG-N per-query galleries, CUHK03 classic single-gallery-shot)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from fixtures import cuhk03, cuhk_sysu

from spherereid.config import (
    DataConfig,
    EvaluateConfig,
    FitConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
)
from spherereid.data.manifest import PreparedSet
from spherereid.stages import evaluate, preprocess, train

TRANSFORM = TransformConfig(resize_height=36, resize_width=18, crop_height=32, crop_width=16)


def _train_and_evaluate(prepared, tmp_path, p: int, k: int) -> dict:
    train.run(
        prepared_dir=prepared,
        out_dir=tmp_path / "train",
        config=FitConfig(
            model=ModelConfig(backbone="tiny", embedding_dim=16, pretrained="none"),
            loss=LossConfig(),
            sampler=SamplerConfig(p=p, k=k, batch_size=p * k),
            optim=OptimConfig(),
            schedule=ScheduleConfig(warmup_epochs=0, milestones=()),
            train=TrainConfig(epochs=1, device="cpu"),
            transform=TRANSFORM,
        ),
    )
    res = evaluate.run(
        prepared_dir=prepared,
        train_dir=tmp_path / "train",
        out_dir=tmp_path / "eval",
        evaluate=EvaluateConfig(max_rank=5, batch_size=32),
        transform=TRANSFORM,
    )
    return {**res.metrics, **json.loads((tmp_path / "eval" / "metrics.json").read_text())}


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


@pytest.mark.slow
def test_cuhk_sysu_is_evaluated_on_each_querys_own_gallery(tmp_path, mlflow_store):
    raw = cuhk_sysu.write_release(tmp_path / "raw")
    data = dataclasses.replace(
        DataConfig(),
        stored_height=36,
        stored_width=18,
        cuhksysu_gallery_size=50,
        workers=1,
        max_bad_fraction=0.5,
    )
    preprocess.run(dataset="cuhk_sysu", raw_dir=raw, out_dir=tmp_path / "prepared", data=data)
    metrics = _train_and_evaluate(tmp_path / "prepared", tmp_path, p=2, k=2)
    assert metrics["protocol"] == "cuhk-sysu"

    # independent check: rank-1 = the nearest box among the query's own gallery has its identity
    prepared = PreparedSet(tmp_path / "prepared")
    galleries = prepared.protocol["galleries"]
    f = np.load(tmp_path / "eval" / "features.npz")
    hits, valid = 0, 0
    for q, gallery in enumerate(galleries):
        gallery = np.asarray(gallery)
        positives = f["g_pids"][gallery] == f["q_pids"][q]
        if not positives.any():
            continue
        valid += 1
        dist = 1.0 - f["gf"][gallery] @ f["qf"][q]
        hits += bool(positives[np.argsort(dist, kind="stable")[0]])
    assert metrics["num_queries"] == len(galleries)
    assert metrics["num_valid_queries"] == valid > 0
    assert metrics["rank1"] == pytest.approx(hits / valid)


@pytest.mark.slow
def test_cuhk03_classic_split_is_evaluated_single_gallery_shot(tmp_path, mlflow_store):
    raw = tmp_path / "raw"
    (raw / "cuhk03_release").mkdir(parents=True)
    cuhk03.write_cuhk03_mat(raw / "cuhk03_release" / "cuhk-03.mat")
    data = dataclasses.replace(
        DataConfig(),
        stored_height=36,
        stored_width=18,
        cuhk03_labels="labeled",
        cuhk03_protocol="classic",
        workers=1,
    )
    preprocess.run(dataset="cuhk03", raw_dir=raw, out_dir=tmp_path / "prepared", data=data)
    prepared = PreparedSet(tmp_path / "prepared")
    assert prepared.protocol["name"] == "cuhk03-classic"
    query, gallery = prepared.split("query"), prepared.split("gallery")
    assert np.array_equal(query.pids, gallery.pids)  # query = gallery = the test identities' images
    metrics = _train_and_evaluate(tmp_path / "prepared", tmp_path, p=4, k=2)
    assert metrics["protocol"] == "cuhk03-classic"
    assert metrics["num_queries"] == len(query)
    assert 0.0 <= metrics["rank1"] <= metrics["rank5"] <= 1.0
