"""The ablation's outputs: ablation.json (one record per cell), ablation.md (ours beside the paper's
Market-1501 figures) and ablation.png (experiments.ablation_plot)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .ablation_plot import plot_ablation
from .paper import SOURCE, paper_value

METRICS = ("rank1", "mAP", "mAP_official", "mINP")


def write_json_atomic(path: Path, value: Any) -> None:
    """JSON written to a temporary file, then renamed over `path` (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(tmp, path)


class AblationRecordError(ValueError):
    """A cell's results lack a reported metric: the message names the cell."""


def cell_record(
    cell_id: str, settings: Mapping[str, str], metrics: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """One ablation.json record: the cell, its settings (head, loss, warmup, sampler), METRICS, `extra`."""
    missing = [m for m in METRICS if m not in metrics]
    if missing:
        raise AblationRecordError(
            f"cell {cell_id}: metrics {', '.join(missing)} missing; run its evaluation again"
        )
    return {"cell": cell_id, **settings, **{m: float(metrics[m]) for m in METRICS}, **extra}


def to_markdown(records: Sequence[dict[str, Any]], title: str = "Ablation") -> str:
    """A table: settings, our four metrics (%), then the paper's Market-1501 rank-1 and mAP."""
    head = (
        "| cell | head | loss | warm-up | sampler | rank-1 | mAP | mAP (official) | mINP "
        "| paper rank-1 (Market-1501) | paper mAP (Market-1501) |"
    )
    lines = [f"# {title}", "", head, "|" + "---|" * 11]
    for r in records:
        ours = " | ".join(f"{100 * float(r[m]):.2f}%" for m in METRICS)
        paper = f"{paper_value(r['cell'], 'rank1')} | {paper_value(r['cell'], 'mAP')}"
        lines.append(
            f"| {r['cell']} | {r['head']} | {r['loss']} | {r['warmup']} | {r['sampler']} | {ours} | {paper} |"
        )
    lines += [
        "",
        "Ours: this run's dataset and `--set` overrides (see ablation.json). The last two columns are the "
        f"paper's reported figures, not ours: {SOURCE}; \"not found\" means the paper's text available to "
        "us gives no number for that cell.",
    ]
    return "\n".join(lines) + "\n"


def write_ablation(records: Sequence[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """Write ablation.json, ablation.md and ablation.png into `out_dir`."""
    out_dir = Path(out_dir)
    paths = {
        "json": out_dir / "ablation.json",
        "md": out_dir / "ablation.md",
        "png": out_dir / "ablation.png",
    }
    write_json_atomic(paths["json"], list(records))
    paths["md"].write_text(to_markdown(records))
    plot_ablation(records, paths["png"])
    return paths
