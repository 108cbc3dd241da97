"""Combined datasets ('market1501+msmt17'): disjoint pids, per-source cameras, per-source rows, versions
and evaluations."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
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
from spherereid.data.datasets import combined
from spherereid.data.datasets.base import DatasetError, Item, Skipped, Splits
from spherereid.data.manifest import PreparedSet
from spherereid.evaluation.metrics import evaluate_features
from spherereid.stages import evaluate, preprocess, synthesize, train

SMALL = dict(
    seed=3,
    train_identities=6,
    test_identities=5,
    cameras=6,
    images_per_camera=1,
    min_cameras=3,
    distractors=4,
    junk=2,
    height=32,
    width=16,
)


def _item(pid: int, cam: int, name: str) -> Item:
    return Item(Path(name), pid, cam, source=name)


def test_pids_and_cameras_are_offset_per_source_and_junk_stays():
    a = Splits(
        [_item(1, 0, "a1"), _item(3, 5, "a2")],
        [_item(7, 1, "aq")],
        [_item(-1, 2, "aj"), _item(0, 3, "ad")],
        [Skipped("bad.jpg", "unreadable")],
        {"name": "market", "junk_dropped": 2},
    )
    b = Splits([_item(0, 0, "b1")], [_item(4, 14, "bq")], [_item(4, 2, "bg")], [], {"name": "market"})
    s = combined.combine([("a", a), ("b", b)])
    # a: pid span 8 (max pid 7), camid span 6 (max camid 5); b is offset by those
    assert [(i.pid, i.camid, i.source) for i in s.train] == [(1, 0, "a/a1"), (3, 5, "a/a2"), (8, 6, "b/b1")]
    assert [(i.pid, i.camid) for i in s.query] == [(7, 1), (12, 20)]
    assert [(i.pid, i.camid) for i in s.gallery] == [(-1, 2), (0, 3), (12, 8)]  # junk -1 not offset
    assert s.skipped == [Skipped("bad.jpg", "unreadable")]
    assert s.protocol["name"] == "market" and s.protocol["junk_dropped"] == 2
    assert [(x["name"], x["pid_offset"], x["camid_offset"]) for x in s.protocol["sources"]] == [
        ("a", 0, 0),
        ("b", 8, 6),
    ]


def test_sources_that_cannot_share_an_evaluation_are_refused():
    plain = Splits([_item(1, 0, "x")], [], [], [], {"name": "market"})
    sysu = Splits([_item(1, 0, "y")], [], [], [], {"name": "cuhk-sysu", "galleries": [[0]]})
    classic = Splits([_item(1, 0, "z")], [], [], [], {"name": "cuhk03-classic", "repeats": 10})
    with pytest.raises(DatasetError, match="dataset 'cuhk_sysu': per-query galleries"):
        combined.combine([("market1501", plain), ("cuhk_sysu", sysu)])
    with pytest.raises(DatasetError, match="different protocols"):
        combined.combine([("market1501", plain), ("cuhk03", classic)])


@pytest.mark.parametrize("name", ["market1501+", "+msmt17", "msmt17+msmt17"])
def test_malformed_combined_names_are_refused(name):
    with pytest.raises(DatasetError, match="joins distinct dataset names"):
        combined.source_names(name)


def test_a_missing_source_folder_is_named(tmp_path):
    (tmp_path / "market1501").mkdir()
    with pytest.raises(DatasetError, match=r"msmt17: raw folder of combined source 'msmt17' not found"):
        datasets.parse("market1501+msmt17", tmp_path / "market1501+msmt17", tmp_path / "work")


def _raw(tmp_path: Path, *, train_identities: int = 6) -> Path:
    """raw/market1501 (Market layout) and raw/msmt17 (MSMT17 layout), synthetic."""
    for layout, cams, seed in (("market1501", 6, 3), ("msmt17", 15, 4)):  # other seeds: other pixels
        over = {"cameras": cams, "train_identities": train_identities, "seed": seed}
        cfg = SyntheticConfig(**{**SMALL, **over}, layout=layout)
        synthesize.run(synthetic=cfg, out_dir=tmp_path / "raw" / layout, workers=1)
    return tmp_path / "raw" / "market1501+msmt17"  # does not exist: the sources are its siblings


def _record(tmp_path: Path, layout: str) -> dict:
    return json.loads((tmp_path / "raw" / layout / "synthetic.json").read_text())["summary"]["images"]


def test_preprocess_lists_every_source_with_its_rows_and_version(tmp_path):
    data = dataclasses.replace(DataConfig(), stored_height=36, stored_width=18, workers=1)
    res = preprocess.run(
        dataset="market1501+msmt17", raw_dir=_raw(tmp_path), out_dir=tmp_path / "p", data=data
    )
    assert res.num_classes == 12  # 6 train identities per source, disjoint
    prepared = PreparedSet(tmp_path / "p")
    sources = prepared.sources()
    assert [s["name"] for s in sources] == ["market1501", "msmt17"]
    market, msmt = _record(tmp_path, "market1501"), _record(tmp_path, "msmt17")
    assert sources[1]["num_images"] == {
        "train": msmt["train"] + msmt["val"],
        "query": msmt["query"],
        "gallery": msmt["gallery"],
    }
    assert sources[0]["num_images"]["query"] == market["query"]
    assert sources[0]["ranges"]["query"] == [0, market["query"]]
    assert sources[1]["ranges"]["query"] == [market["query"], market["query"] + msmt["query"]]
    assert len({s["fingerprint"] for s in sources}) == 2 and all(len(s["fingerprint"]) == 16 for s in sources)
    rows = {
        s: [e for e in prepared.entries if e.source.startswith(s + "/")] for s in ("market1501", "msmt17")
    }
    pids = {s: {e.pid for e in r if e.pid > 0} for s, r in rows.items()}
    cams = {s: {e.camid for e in r} for s, r in rows.items()}
    assert not pids["market1501"] & pids["msmt17"] and not cams["market1501"] & cams["msmt17"]
    assert min(cams["msmt17"]) >= sources[1]["camid_offset"] == max(cams["market1501"]) + 1


@pytest.mark.slow
def test_combined_run_trains_one_model_and_reports_two_evaluations(tmp_path, monkeypatch):
    """synthesize x2 -> preprocess (market1501+msmt17) -> train (tiny, 1 epoch) -> evaluate per source."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = dataclasses.replace(DataConfig(), stored_height=36, stored_width=18, workers=1)
    raw = _raw(tmp_path, train_identities=8)
    prep = preprocess.run(dataset="market1501+msmt17", raw_dir=raw, out_dir=tmp_path / "prepared", data=data)
    assert prep.num_classes == 16
    transform = TransformConfig(resize_height=36, resize_width=18, crop_height=32, crop_width=16)
    result = train.run(
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
    assert result is not None
    res = evaluate.run(
        prepared_dir=tmp_path / "prepared",
        train_dir=tmp_path / "train",
        out_dir=tmp_path / "eval",
        evaluate=EvaluateConfig(max_rank=5, batch_size=32),
        transform=transform,
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["headline_source"] == "market1501"
    market, msmt = _record(tmp_path, "market1501"), _record(tmp_path, "msmt17")
    assert metrics["market1501"]["num_queries"] == market["query"]
    assert metrics["msmt17"]["num_queries"] == msmt["query"]
    assert {k: metrics[k] for k in res.metrics} == {k: metrics["market1501"][k] for k in res.metrics}
    # independently: the msmt17 rows of features.npz ranked alone give the msmt17 section
    feats, src = np.load(tmp_path / "eval" / "features.npz"), PreparedSet(tmp_path / "prepared").sources()[1]
    (qa, qb), (ga, gb) = src["ranges"]["query"], src["ranges"]["gallery"]
    alone = evaluate_features(
        feats["qf"][qa:qb],
        feats["gf"][ga:gb],
        feats["q_pids"][qa:qb],
        feats["g_pids"][ga:gb],
        feats["q_camids"][qa:qb],
        feats["g_camids"][ga:gb],
        max_rank=5,
    ).to_dict()
    assert metrics["msmt17"]["mAP"] == pytest.approx(alone["mAP"]) and metrics["msmt17"][
        "rank1"
    ] == pytest.approx(alone["rank1"])
    versions = {s["name"]: s["fingerprint"] for s in PreparedSet(tmp_path / "prepared").sources()}
    assert {n: metrics[n]["version"] for n in versions} == versions
    assert (tmp_path / "eval" / "cmc_market1501.csv").is_file() and (
        tmp_path / "eval" / "cmc_msmt17.csv"
    ).is_file()
    # the precision check is the headline source's: its figures at the chain's precision are the section's
    check = json.loads((tmp_path / "eval" / "precision_check.json").read_text())
    headline = {key: metrics["market1501"][key] for key in ("rank1", "mAP")}
    assert check["source"] == "market1501" and check[check["precision"]] == headline


def test_the_model_card_lists_every_source_with_its_version():
    from spherereid.reporting.model_card import Lineage, model_card

    card = model_card(
        name="spherereid-market1501+msmt17",
        version=1,
        dataset="market1501+msmt17",
        dataset_hash="abcd",
        params={},
        metrics={},
        passed_gate=True,
        gate_text="quality gate passed",
        lineage=Lineage(),
        chain={"stored_size": [36, 18], "input_size": [32, 16], "mean": [0.5] * 3, "std": [0.25] * 3},
        sources=[("market1501", "1111"), ("msmt17", "2222")],
    )
    assert "| market1501+msmt17 | `abcd` | `unknown` |" in card
    assert "| - source market1501 | `1111` | (part of the above) |" in card
    assert "| - source msmt17 | `2222` | (part of the above) |" in card


@pytest.mark.parametrize("entry", ["market1501+", "market1501+market1501", "market1501+ msmt17"])
def test_params_refuse_a_malformed_combined_entry(entry):
    import yaml

    from spherereid.config import ConfigError, params_from_dict

    raw = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    assert params_from_dict({**raw, "datasets": ["market1501+msmt17"]}).datasets == ("market1501+msmt17",)
    with pytest.raises(
        ConfigError, match=f"datasets entry '{re.escape(entry)}': join distinct dataset names"
    ):
        params_from_dict({**raw, "datasets": [entry]}, "params.yaml")


def test_sources_are_read_from_the_entry_folder_first_then_its_siblings(tmp_path):
    entry = tmp_path / "raw" / "market1501+msmt17"
    (entry / "market1501").mkdir(parents=True)
    (tmp_path / "raw" / "market1501").mkdir()
    (tmp_path / "raw" / "msmt17").mkdir()
    assert combined.source_root(entry, "market1501") == entry / "market1501"  # the DVC-tracked layout
    assert combined.source_root(entry, "msmt17") == tmp_path / "raw" / "msmt17"
