"""The ablation grid as a KFP pipeline (`python -m pipeline compile --ablation`): preprocess one dataset,
then per grid cell (ParallelFor over the `cells` parameter) train -> evaluate, and one summary task that
gathers the cells' evaluations (dsl.Collected) into ablation.json, ablation.md and ablation.png, as
`spherereid ablation` writes them (experiments.tables), plus the table as a Markdown artifact.

The cells come from experiments.grid (the 17-cell default grid, narrowed by `--grid AXIS=V1,V2`) and
`--set section.key=value` applies to every cell (experiments.overrides), as in `spherereid ablation`:
`ablation_arguments` turns them into the `cells` parameter's default, one item per cell holding its id
and settings and the model, loss, sampler and schedule sections it trains with (experiments.cells). The
other sections are parameters (params.yaml plus --set). The summary matches each evaluation to its cell
by the evaluation's "cell" metadata.

Each cell's train task is cached by KFP like any other: rerunning the same ablation serves finished cells
from the cache (the CLI's done.json). Not supported here: --checkpoint-pvc and --nodes > 1 (a cell's
checkpoint folder and TrainJob are named per dataset, which all cells share).
"""

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kfp import dsl

from components.ablation_summary import ablation_summary as ablation_summary_component
from components.evaluate import evaluate as evaluate_component
from components.preprocess import preprocess as preprocess_component
from components.train import train as train_component
from spherereid.config import TRAIN_SECTIONS, load_params
from spherereid.experiments.cells import CELL_SECTIONS, cell_items
from spherereid.experiments.grid import default_grid, narrow, parse_filters
from spherereid.experiments.overrides import apply_overrides, parse_assignments

from .settings import ClusterSettings, PipelineError, params_arguments
from .spherereid_pipeline import _cleanup_task, _gpu_train, _on_gpus, _pipeline_config, _small, _train_image

ABLATION_PIPELINE_NAME = "spherereid-ablation"
# the sections that are pipeline parameters; model, loss, sampler and schedule are per cell
SHARED_SECTIONS = ("data", "synthetic", "transform", "optim", "train", "evaluate", "register")


def ablation_arguments(
    params_path: str | Path, overrides: Sequence[str] = (), filters: Sequence[str] = ()
) -> dict[str, Any]:
    """The ablation pipeline's arguments: params.yaml with `--set` overrides, the first dataset, and one
    `cells` item per grid cell left by the `--grid` filters (OverrideError names a bad flag)."""
    params = apply_overrides(load_params(params_path), parse_assignments(overrides))
    cells = narrow(default_grid(), parse_filters(filters))
    plain = params_arguments(params)
    return {
        "dataset": params.datasets[0],
        "cells": cell_items(params, cells),
        **{name: plain[name] for name in SHARED_SECTIONS},
    }


def _check(settings: ClusterSettings) -> ClusterSettings:
    if settings.checkpoint_pvc or settings.nodes > 1:
        raise PipelineError(
            "--ablation: --checkpoint-pvc and --nodes > 1 are not supported (every cell shares the "
            "dataset's checkpoint folder and TrainJob name); drop them"
        )
    return settings


def _cell(settings: ClusterSettings, cell: Any, prepared: Any, a: dict[str, Any]) -> dsl.PipelineTask:
    """train -> evaluate for one cell; the evaluate task (its evaluation names the cell)."""
    sections = {name: getattr(cell, name) if name in CELL_SECTIONS else a[name] for name in TRAIN_SECTIONS}
    fit = train_component(prepared=prepared, scale=json.dumps(settings.scale_out(_train_image())), **sections)
    _gpu_train(fit, settings)
    ev = evaluate_component(
        prepared=prepared,
        trained=fit.outputs["trained"],
        evaluate=a["evaluate"],
        transform=a["transform"],
        register=a["register"],
        cell=cell.cell,
    )
    _small(ev, settings, "evaluate")
    if settings.evaluate_gpus > 0:
        _on_gpus(ev, settings, settings.evaluate_gpus)
    return ev


def build_ablation_pipeline(settings: ClusterSettings | None = None) -> Callable:
    """The ablation pipeline function for these cluster settings."""
    settings = _check(settings or ClusterSettings())

    @dsl.pipeline(
        name=ABLATION_PIPELINE_NAME,
        description="SphereReID ablation: per grid cell train -> evaluate; the ablation table",
        pipeline_config=_pipeline_config(settings),
    )
    def spherereid_ablation(
        dataset: str,
        cells: list[dict[str, dict]],  # every field a dict: KFP types a loop item's fields by it
        data: dict,
        synthetic: dict,
        transform: dict,
        optim: dict,
        train: dict,
        evaluate: dict,
        register: dict,
        data_repo: str = "",
        data_rev: str = "",
        data_path: str = "data/raw/{dataset}",
        raw_root: str = "",
    ):
        args = dict(locals())
        with dsl.ExitHandler(_cleanup_task(settings, [dataset]), name="cleanup-on-failure"):
            sources = {k: args[k] for k in ("raw_root", "data_repo", "data_rev", "data_path")}
            prep = preprocess_component(dataset=dataset, data=data, synthetic=synthetic, **sources)
            _small(prep, settings, "preprocess").set_caching_options(True)
            with dsl.ParallelFor(cells, parallelism=settings.parallelism) as cell:
                ev = _cell(settings, cell, prep.outputs["prepared"], args)
            summary = ablation_summary_component(
                cells=cells, evaluations=dsl.Collected(ev.outputs["evaluation"])
            )
            _small(summary, settings, "ablation_summary")

    return spherereid_ablation
