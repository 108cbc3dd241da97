"""The ablation grid as pipeline fan-out items, and the ablation.json records gathered back from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spherereid.config import build_section, load_params
from spherereid.experiments.cells import CELL_SECTIONS, CellResultError, cell_items, records
from spherereid.experiments.grid import Cell, default_grid
from spherereid.experiments.overrides import apply_overrides
from spherereid.experiments.tables import METRICS

ROOT = Path(__file__).resolve().parents[2]


def test_each_item_trains_what_the_cli_trains_for_its_cell():
    params = apply_overrides(load_params(ROOT / "params.yaml"), {"model.backbone": "tiny"})
    items = cell_items(params, default_grid())
    assert len(items) == 17
    assert [i["cell"]["cell"] for i in items] == [c.cell_id for c in default_grid()]
    for cell, item in zip(default_grid(), items, strict=True):
        assert sorted(item) == sorted(("cell", *CELL_SECTIONS))
        assert all(isinstance(v, dict) for v in item.values())  # KFP types loop fields by the value type
        assert item["cell"] == {"cell": cell.cell_id, **cell.settings()}
        want = apply_overrides(params, cell.overrides(params))
        for name in CELL_SECTIONS:  # the plain dict rebuilds exactly the section the runner trains with
            assert build_section(name, item[name], source="test") == getattr(want, name), (cell, name)
    off = items[[c.cell_id for c in default_grid()].index("A-softmax-nowarmup-balanced")]
    assert off["schedule"]["warmup_epochs"] == 0 and off["model"]["backbone"] == "tiny"
    assert off["schedule"]["milestones"] == list(params.schedule.milestones)  # a list, not a tuple
    assert params.schedule.warmup_epochs == 5  # so the off cell did change it


def _evaluation(tmp_path, name, cell, metrics):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({**metrics, "protocol": {"name": "market1501"}}))
    return folder, {"dataset": "synthetic", "mlflow_run_id": f"run-{name}", **cell}


def test_records_follow_the_grid_order_matched_by_cell_metadata(tmp_path):
    cells = [Cell("A", "softmax", "on", "balanced"), Cell("D", "sphere", "off", "random")]
    items = [{"cell": {"cell": c.cell_id, **c.settings()}} for c in cells]
    values = {m: 0.5 for m in METRICS}
    given = [  # the collected list in the other order
        _evaluation(tmp_path, "e1", items[1]["cell"], {**values, "rank1": 0.25}),
        _evaluation(tmp_path, "e2", items[0]["cell"], {**values, "rank1": 0.75}),
    ]
    out = records(given, items)
    assert [r["cell"] for r in out] == ["A-softmax-warmup-balanced", "D-sphere-nowarmup-random"]
    assert out[0] == {
        "cell": "A-softmax-warmup-balanced",
        "head": "A",
        "loss": "softmax",
        "warmup": "on",
        "sampler": "balanced",
        "rank1": 0.75,
        "mAP": 0.5,
        "mAP_official": 0.5,
        "mINP": 0.5,
        "run_id": "run-e2",
    }
    assert out[1]["rank1"] == 0.25 and out[1]["run_id"] == "run-e1"


def test_records_name_a_missing_repeated_or_unreadable_cell(tmp_path):
    cell = Cell("A", "softmax", "on", "balanced")
    items = [{"cell": {"cell": cell.cell_id, **cell.settings()}}]
    values = {m: 0.5 for m in METRICS}
    with pytest.raises(CellResultError, match="no evaluation collected for cell.s. A-softmax-warmup-bal"):
        records([], items)
    one = _evaluation(tmp_path, "e1", items[0]["cell"], values)
    with pytest.raises(CellResultError, match="e1: evaluation metadata 'cell' is 'A-softmax-warmup-bal"):
        records([one, one], items)
    (one[0] / "metrics.json").unlink()
    with pytest.raises(CellResultError, match="metrics.json: cannot read cell A-softmax-warmup-balanced"):
        records([one], items)
