"""The ablation grid as a pipeline fan-out: one item per cell (its id and settings, and the params sections
it changes), and the ablation.json records gathered back from the cells' evaluations.

`cell_items(params, cells)` -> `[{"cell": {"cell": "A-softmax-warmup-balanced", "head": "A", ...},
"model": {...}, "loss": {...}, "sampler": {...}, "schedule": {...}}, ...]`: the sections are params (with
`--set` applied) plus the cell's overrides (grid.Cell.overrides), so a cell trains exactly what
`spherereid ablation` trains for it. Every value is a dict: KFP types a loop item's fields by the list's
value type. `records(...)` matches evaluations by their "cell" metadata (never by list position).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Params
from ..contracts import METRICS_FILE
from .grid import Cell
from .overrides import apply_overrides
from .tables import cell_record

CELL_SECTIONS = ("model", "loss", "sampler", "schedule")  # the sections a cell's overrides touch


class CellResultError(ValueError):
    """A cell's evaluation is missing or unreadable: the message names the cell or the file."""


def _plain(section: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(section).items()}


def cell_items(params: Params, cells: Sequence[Cell]) -> list[dict[str, dict[str, Any]]]:
    """One fan-out item per cell: {"cell": {"cell": id, head, loss, warmup, sampler}, **its sections}."""
    items = []
    for cell in cells:
        cp = apply_overrides(params, cell.overrides(params))
        sections = {name: _plain(getattr(cp, name)) for name in CELL_SECTIONS}
        items.append({"cell": {"cell": cell.cell_id, **cell.settings()}, **sections})
    return items


def records(
    evaluations: Iterable[tuple[str | Path, Mapping[str, Any]]], items: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """ablation.json records, in the order of `items` (cell_items), from (evaluation folder, metadata)
    pairs whose metadata holds the cell's id and settings (and the training run as mlflow_run_id)."""
    order = [str(item["cell"]["cell"]) for item in items]
    found: dict[str, tuple[Path, Mapping[str, Any]]] = {}
    for path, meta in evaluations:
        cell = str(meta.get("cell") or "")
        if not cell or cell in found:
            raise CellResultError(f"{path}: evaluation metadata 'cell' is {cell!r} (missing or repeated)")
        found[cell] = (Path(path), meta)
    missing = [c for c in order if c not in found]
    if missing:
        raise CellResultError(f"no evaluation collected for cell(s) {', '.join(missing)}")
    out = []
    for cell in order:
        path, meta = found[cell]
        try:
            metrics = json.loads((path / METRICS_FILE).read_text())
        except (OSError, ValueError) as e:
            raise CellResultError(f"{path / METRICS_FILE}: cannot read cell {cell}'s metrics ({e})") from None
        settings = {k: str(meta[k]) for k in ("head", "loss", "warmup", "sampler")}
        out.append(cell_record(cell, settings, metrics, run_id=str(meta.get("mlflow_run_id", ""))))
    return out
