"""docs/research.md's ablation table is the measured run's record (docs/data/ablation-quickstart.json,
the ablation.json of that run), not numbers typed by hand; the plot beside it exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORD = ROOT / "docs" / "data" / "ablation-quickstart.json"
PAGE = ROOT / "docs" / "research.md"
COLUMNS = [("softmax", "off"), ("softmax", "on"), ("sphere", "off"), ("sphere", "on")]


def _table_rows() -> dict[str, list[str]]:
    section = PAGE.read_text().split("### Measured at the quickstart config", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0].startswith(("A", "B", "C", "D")):
            rows[cells[0]] = cells[1:5]
    return rows


def test_every_cell_of_the_record_is_in_the_table_as_measured():
    records = json.loads(RECORD.read_text())
    assert len(records) == 17
    rows = _table_rows()
    for r in records:
        row = "D, random batches" if r["sampler"] == "random" else r["head"]
        text = rows[row][COLUMNS.index((r["loss"], r["warmup"]))]
        found = re.search(r"([\d.]+) / ([\d.]+)", text)
        assert found, f"{r['cell']}: no figures in {text!r}"
        assert (found[1], found[2]) == (f"{100 * r['rank1']:.2f}", f"{100 * r['mAP']:.2f}"), r["cell"]


def test_the_plot_and_the_record_are_linked_from_the_page():
    text = PAGE.read_text()
    for link in ("images/ablation.png", "data/ablation-quickstart.json"):
        assert f"]({link})" in text and (PAGE.parent / link).exists(), link
