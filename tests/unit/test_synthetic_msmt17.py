"""The synthetic generator's MSMT17 layout: real folders and lists, deterministic, same pixels as Market's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter

import pytest

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
from spherereid.data import datasets
from spherereid.data.datasets.synthetic import generate
from spherereid.stages import evaluate, preprocess, synthesize, train

SMALL = dict(
    seed=3,
    train_identities=6,
    test_identities=5,
    cameras=15,
    images_per_camera=1,
    min_cameras=3,
    distractors=4,
    junk=2,
    height=32,
    width=16,
)


def _hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_lists_and_counts_parse_back(tmp_path):
    summary = generate(tmp_path / "m", layout="msmt17", **SMALL)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "list_gallery.txt",
        "list_query.txt",
        "list_train.txt",
        "list_val.txt",
        "test",
        "train",
    ]
    s = datasets.parse("msmt17", tmp_path / "m", tmp_path / "work")
    counts = summary["images"]
    assert len(s.train) == counts["train"] + counts["val"] and counts["val"] >= 1
    assert (len(s.query), len(s.gallery)) == (counts["query"], counts["gallery"])
    assert s.skipped == [] and summary["distractors"] == summary["junk"] == 0
    assert len({i.pid for i in s.train}) == 6 and len({i.pid for i in s.query + s.gallery}) == 5
    assert {i.camid for i in s.train + s.query + s.gallery} <= set(range(15))
    first = (tmp_path / "m" / "list_train.txt").read_text().splitlines()[0]
    folder, rest = first.split("/")
    name, pid = rest.split(" ")
    assert folder == f"{int(pid):04d}" and name.split("_")[3] == "0303morning"  # MSMT17 naming


def test_deterministic_and_the_same_pixels_as_the_market_layout(tmp_path):
    generate(tmp_path / "a", layout="msmt17", **SMALL)
    generate(tmp_path / "b", layout="msmt17", workers=2, **SMALL)
    generate(tmp_path / "market", **SMALL)
    a = _hashes(tmp_path / "a")
    assert a == _hashes(tmp_path / "b")
    market = _hashes(tmp_path / "market")
    # every identity image of the Market layout (pid > 0) appears once in the MSMT17 layout
    identity = Counter(h for rel, h in market.items() if not rel.split("/")[1].startswith(("0000_", "-1_")))
    assert Counter(h for rel, h in a.items() if rel.endswith(".jpg")) == identity


def test_config_refuses_an_unknown_layout_and_too_many_cameras():
    with pytest.raises(ValueError, match="synthetic.layout must be market1501|msmt17"):
        SyntheticConfig(layout="duke")
    with pytest.raises(ValueError, match=r"synthetic.cameras must be in 1..6 \(market1501 naming\)"):
        SyntheticConfig(cameras=15)
    assert SyntheticConfig(cameras=15, layout="msmt17").cameras == 15


@pytest.mark.slow
def test_msmt17_path_end_to_end_through_the_stage_run_functions(tmp_path, monkeypatch):
    """synthesize (msmt17 layout) -> preprocess (msmt17) -> train (tiny) -> evaluate, via the run()s."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    cfg = SyntheticConfig(**{**SMALL, "train_identities": 8, "images_per_camera": 2}, layout="msmt17")
    synthesize.run(synthetic=cfg, out_dir=tmp_path / "raw", workers=1)
    record = json.loads((tmp_path / "raw" / "synthetic.json").read_text())
    assert record["config"]["layout"] == "msmt17"
    data = dataclasses.replace(DataConfig(), stored_height=36, stored_width=18, workers=1)
    prep = preprocess.run(
        dataset="msmt17", raw_dir=tmp_path / "raw", out_dir=tmp_path / "prepared", data=data
    )
    counts = record["summary"]["images"]
    assert prep.num_images == {
        "train": counts["train"] + counts["val"],
        "query": counts["query"],
        "gallery": counts["gallery"],
    }
    assert prep.num_classes == 8
    transform = TransformConfig(resize_height=36, resize_width=18, crop_height=32, crop_width=16)
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
            transform=transform,
        ),
    )
    res = evaluate.run(
        prepared_dir=tmp_path / "prepared",
        train_dir=tmp_path / "train",
        out_dir=tmp_path / "eval",
        evaluate=EvaluateConfig(max_rank=5, batch_size=32),
        transform=transform,
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["protocol"] == "market"
    assert 0.0 <= res.metrics["mAP"] <= 1.0 and 0.0 <= res.metrics["rank1"] <= 1.0
