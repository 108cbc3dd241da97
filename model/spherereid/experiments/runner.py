"""Run an ablation grid: preprocess once, then per cell the train and evaluate stages' run(), each cell in
<out>/cells/<cell-id>/ (train/, eval/, done.json), under one MLflow parent run.

Resume: a cell whose done.json (written atomically after its metrics) matches the cell's params is not
rerun; a half-done cell reruns, and the train stage resumes it from its checkpoint. The train stage opens
its own MLflow run, so each child run is tied to the parent with the `mlflow.parentRunId` tag afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import FitConfig, Params
from ..contracts import DATASET_INFO_FILE, RUN_FILE
from ..data.manifest import PreparedSet
from ..progress import tqdm
from ..stages import evaluate as evaluate_stage
from ..stages import preprocess as preprocess_stage
from ..stages import synthesize as synthesize_stage
from ..stages import train as train_stage
from ..tracking import lineage, runs, tags
from .grid import Cell
from .overrides import apply_overrides
from .tables import METRICS, cell_record, write_ablation, write_json_atomic

log = logging.getLogger(__name__)

DONE_FILE = "done.json"
PARENT_FILE = "mlflow_parent.json"
PREPARED_RECORD = "prepared.json"


@dataclass(frozen=True)
class AblationResult:
    """One record per cell (grid order), the files written, and which cells ran or were reused."""

    records: list[dict[str, Any]]
    paths: dict[str, Path]
    ran: list[str]
    reused: list[str]
    parent_run_id: str


def prepare_once(params: Params, out_dir: Path, raw_dir: Path | None = None) -> Path:
    """<out>/prepared for params.datasets[0], reused while the data and synthetic sections are unchanged.
    The synthetic set is generated into <out>/raw; another dataset is read from raw_dir
    (default data/raw/<dataset>)."""
    dataset = params.datasets[0]
    target, record = out_dir / "prepared", out_dir / PREPARED_RECORD
    key = {"dataset": dataset, "data": dataclasses.asdict(params.data), "raw": str(raw_dir)}
    if dataset == "synthetic":
        key["synthetic"] = dataclasses.asdict(params.synthetic)
    if record.is_file() and json.loads(record.read_text()) == key and (target / DATASET_INFO_FILE).is_file():
        log.info("%s: prepared set reused", target)
        return target
    if raw_dir is None:
        raw_dir = Path("data/raw") / dataset
        if dataset == "synthetic":
            raw_dir = out_dir / "raw"
            synthesize_stage.run(synthetic=params.synthetic, out_dir=raw_dir, workers=params.data.workers)
    preprocess_stage.run(dataset=dataset, raw_dir=raw_dir, out_dir=target, data=params.data)
    write_json_atomic(record, key)
    return target


def _parent_run(out_dir: Path, experiment: str, params: Params, cells: Sequence[Cell]) -> runs.RunRef:
    """The parent run recorded in <out>/mlflow_parent.json (a resumed ablation), else a new one."""
    path = out_dir / PARENT_FILE
    if path.is_file():
        try:
            ref = runs.read_run_ref(path)
            runs.set_tags(ref, tags.ablation_resumed_tags())
            return ref
        except runs.RunRefError as exc:
            log.warning("%s; starting a new parent run", exc)
    ref = runs.start_run(
        experiment=experiment,
        run_name=f"ablation-{out_dir.resolve().name}",
        params={**params.flat(), "ablation.cells": ",".join(c.cell_id for c in cells)},
        tags=tags.ablation_parent_tags(lineage.git_commit(Path.cwd())),
    )
    runs.write_run_ref(path, ref)
    return ref


def run_cell(
    cell: Cell, params: Params, prepared_dir: Path, cell_dir: Path, parent: runs.RunRef
) -> tuple[dict, bool]:
    """Train and evaluate one cell (or reuse its done.json); returns (record, reused)."""
    cp = apply_overrides(params, cell.overrides(params))
    key = lineage.params_hash(cp.flat())
    done = cell_dir / DONE_FILE
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("params_hash") == key:
            return record, True
        log.warning("%s: made with other params; training the cell again", done)
    start = time.perf_counter()
    train_dir = cell_dir / "train"
    train_stage.run(prepared_dir=prepared_dir, out_dir=train_dir, config=FitConfig.from_params(cp))
    child = runs.read_run_ref(train_dir / RUN_FILE)
    runs.set_tags(child, tags.ablation_cell_tags(parent.run_id, cell.cell_id))
    res = evaluate_stage.run(
        prepared_dir=prepared_dir,
        train_dir=train_dir,
        out_dir=cell_dir / "eval",
        evaluate=cp.evaluate,
        transform=cp.transform,
    )
    record = cell_record(
        cell.cell_id,
        cell.settings(),
        res.metrics,
        seconds=round(time.perf_counter() - start, 2),
        run_id=child.run_id,
        params_hash=key,
    )
    write_json_atomic(done, record)  # last: the marker that the cell is finished
    return record, False


def _eta(seconds: Sequence[float], left: int) -> str:
    if not seconds or not left:
        return "0 s" if not left else "unknown"
    total = sum(seconds) / len(seconds) * left
    return f"{total / 60:.1f} min" if total >= 90 else f"{total:.0f} s"


def run_ablation(
    *,
    params: Params,
    out_dir: Path,
    cells: Sequence[Cell],
    raw_dir: Path | None = None,
    overrides: Mapping[str, str] | None = None,
) -> AblationResult:
    """Run every cell (reusing finished ones) and write ablation.json/md/png into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prepared_dir = prepare_once(params, out_dir, raw_dir)
    dataset = PreparedSet(prepared_dir).info.get("dataset", params.datasets[0])
    parent = _parent_run(out_dir, f"spherereid-{dataset}", params, cells)
    records: list[dict[str, Any]] = []
    ran: list[str] = []
    reused: list[str] = []
    timings: list[float] = []
    bar = tqdm(cells, desc="ablation", unit="cell", total=len(cells))
    for i, cell in enumerate(bar):
        record, was_reused = run_cell(cell, params, prepared_dir, out_dir / "cells" / cell.cell_id, parent)
        (reused if was_reused else ran).append(cell.cell_id)
        if not was_reused:
            timings.append(float(record["seconds"]))
        records.append(record)
        eta = _eta(timings, len(cells) - i - 1)
        bar.set_postfix(cell=cell.cell_id, left=eta)
        log.info(
            "cell %d/%d %s%s: rank-1 %.2f%%, mAP %.2f%% (%.1f s); about %s left",
            i + 1,
            len(cells),
            cell.cell_id,
            " (reused)" if was_reused else "",
            100 * record["rank1"],
            100 * record["mAP"],
            record["seconds"],
            eta,
        )
    paths = write_ablation(records, out_dir)
    _finish_parent(parent, records, paths, overrides or {})
    return AblationResult(records, paths, ran, reused, parent.run_id)


def _finish_parent(
    parent: runs.RunRef, records: Sequence[dict], paths: Mapping[str, Path], overrides
) -> None:
    """Per-cell metrics (`<cell>.<metric>`), the --set overrides as tags, the three files; FINISHED."""
    runs.log_metrics(parent, {f"{r['cell']}.{m}": float(r[m]) for r in records for m in METRICS})
    runs.set_tags(parent, tags.ablation_set_tags(overrides))
    for path in paths.values():
        runs.log_artifact(parent, path, artifact_path="ablation")
    runs.finish_run(parent)
