"""What each KFP task does around its stage's run(), so the components in components/ stay thin.

A component hands over its inputs (KFP struct dicts, artifacts) and gets back what it writes to its
outputs: artifact metadata, a report, metric values, its return value. The artifacts are seen only as a
local path and a metadata dict (`Artifact`); the library never imports kfp. Each function calls the
stage's `run()` (through its module, as DVC and the CLI do) and writes the MLflow tags the task owes the
run through the stage and tracking functions, never a tag of its own. Each task imports only its stage.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..contracts import CMC_PLOT, RANKED_LISTS_PLOT, REGISTRATION_FILE, REPORT_MD, RUN_FILE
from ..param_coercion import build_from_struct, fit_config_from_structs
from ..tracking import runs, tags

PREPARED_LINEAGE = ("dataset", "revision", "data_hash")  # the prepared artifact's metadata train hands on


class Artifact(Protocol):
    """A KFP input or output artifact as a task sees it."""

    path: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class TaskOutput:
    """What a component writes: its output artifact's metadata, Metrics values, a report, a return value."""

    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    report: str = ""
    value: Any = None


def preprocess(
    *, dataset: str, data: dict, synthetic: dict, sources: Mapping[str, str], out_dir: str
) -> TaskOutput:
    """Fetch (a folder, a DVC repository at a revision) or generate the raw data, prepare it; the report
    and the data's version (the sources, credentials out of URLs, and where it came from)."""
    from . import preprocess as preprocess_stage
    from .raw_source import recorded_sources, resolve_raw

    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        synth = build_from_struct("synthetic", synthetic)
        raw = resolve_raw(dataset=dataset, work_dir=Path(tmp), synthetic=synth, **sources)
        preprocess_stage.run(
            dataset=dataset, raw_dir=raw.path, out_dir=out, data=build_from_struct("data", data)
        )
    metadata = {"dataset": dataset, **recorded_sources(sources), **raw.lineage()}
    return TaskOutput(metadata=metadata, report=(out / REPORT_MD).read_text())


def train(inputs: Mapping[str, Any], prepared: Artifact, trained_dir: str) -> TaskOutput:
    """Train on `prepared` with the FitConfig of the component's `inputs` (its train sections): here, under
    torchrun or as a TrainJob (`scale`), in `checkpoint_dir` when given (then copied to `trained_dir`,
    without checkpoints). The pod has no dvc.lock: the raw data's DVC hash and revision come from
    preprocess's metadata and are tagged on the run (tags.data_tags)."""
    from ..launch.scaleout import ScaleOut, train_scaled
    from . import train as train_stage
    from .artifacts import copy_train_output

    config = fit_config_from_structs(dict(inputs))
    work = Path(inputs["checkpoint_dir"] or trained_dir)
    plan = ScaleOut.from_dict(json.loads(inputs["scale"] or "{}"))
    lineage = {key: prepared.metadata.get(key, "") for key in PREPARED_LINEAGE}
    if plan.processes > 1:
        train_scaled(
            plan,
            prepared_dir=Path(prepared.path),
            out_dir=work,
            sections=config.sections(),
            dataset=lineage["dataset"] or "data",
            run_id=inputs["run_id"],
        )
        res = train_stage.read_result(work)
    else:
        res = train_stage.run(prepared_dir=Path(prepared.path), out_dir=work, config=config)
    if inputs["checkpoint_dir"]:
        copy_train_output(work, Path(trained_dir))
    data = tags.data_tags(dvc_data_hash=lineage["data_hash"], data_revision=lineage["revision"])
    runs.set_tags(runs.read_run_ref(work / RUN_FILE), data)
    trained = {"epochs": res.epochs, "final_loss": res.final_loss, "mlflow_run_id": res.run_id}
    return TaskOutput(metadata={**lineage, **trained})


def evaluate(
    prepared: Artifact,
    trained: Artifact,
    out_dir: str,
    *,
    structs: Mapping[str, dict],
    cell: Mapping[str, Any],
) -> TaskOutput:
    """Evaluate, embed the figures in an HTML report and decide the quality gate (its verdict is the value:
    rank1, mAP, passed | failed, reason). The evaluation's metadata names the dataset, the training run and,
    in the ablation pipeline, the grid `cell`."""
    from ..reporting.plots import figures_html
    from . import evaluate as evaluate_stage
    from .gate import verdict

    out = Path(out_dir)
    res = evaluate_stage.run(
        prepared_dir=Path(prepared.path),
        train_dir=Path(trained.path),
        out_dir=out,
        evaluate=build_from_struct("evaluate", structs["evaluate"]),
        transform=build_from_struct("transform", structs["transform"]),
    )
    run_id = trained.metadata.get("mlflow_run_id", "")
    return TaskOutput(
        metadata={"dataset": prepared.metadata.get("dataset", ""), "mlflow_run_id": run_id, **cell},
        metrics={key: float(value) for key, value in res.metrics.items()},
        report=figures_html(out, (CMC_PLOT, RANKED_LISTS_PLOT)),
        value=verdict(res.metrics, build_from_struct("register", structs["register"])),
    )


def cross_evaluate(
    model: str,
    tests: Sequence[str],
    collected: Mapping[str, Sequence[Artifact]],
    *,
    evaluate: dict,
    out_dir: str,
) -> TaskOutput:
    """Dataset `model`'s trained model on each of `tests` (the collected "prepared", "trained" and
    "evaluations", matched by their "dataset" metadata); the version the training run was registered as gets
    the cross-dataset tags and table. Metrics `<test>.<metric>`; the value says what was tagged."""
    from . import cross_evaluate as cross_evaluate_stage
    from .collected import by_dataset, link_datasets, pick

    items = {name: [(a.path, a.metadata) for a in artifacts] for name, artifacts in collected.items()}
    train_dir, eval_dir = (
        pick(items["trained"], model, "trained"),
        pick(items["evaluations"], model, "evaluation"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = link_datasets(by_dataset(items["prepared"], "prepared"), Path(tmp))
        res = cross_evaluate_stage.run(
            model=model,
            train_dir=train_dir,
            eval_dir=eval_dir,
            prepared_root=root,
            tests=[str(t) for t in tests],
            out_dir=Path(out_dir),
            evaluate=build_from_struct("evaluate", evaluate),
        )
    found = {test: r["metrics"] for test, r in res.items()}
    values = {f"{test}.{m}": float(found[test][m]) for test in found for m in tags.XEVAL_METRICS}
    return TaskOutput(
        metadata={"dataset": model, "tests": sorted(found)},
        metrics=values,
        value=cross_evaluate_stage.record_for_training_run(train_dir, model, found),
    )


def register(
    trained: Artifact, evaluation: Artifact, prepared: Artifact, *, register: dict, out_dir: str
) -> TaskOutput:
    """Register behind the gate (as DVC does); registration.json becomes the artifact's metadata. The
    prepared set is where ONNX parity is shown (register.export_onnx)."""
    from . import register as register_stage

    out = Path(out_dir)
    register_stage.run(
        train_dir=Path(trained.path),
        eval_dir=Path(evaluation.path),
        out_dir=out,
        register=build_from_struct("register", register),
        prepared_dir=Path(prepared.path),
    )
    return TaskOutput(metadata=json.loads((out / REGISTRATION_FILE).read_text()))


def cleanup(inputs: Mapping[str, Any]) -> str:
    """The exit handler: stages.cleanup for the chain's final status (`inputs["status"]`, KFP's
    PipelineTaskFinalStatus); what it did, in words."""
    from . import cleanup as cleanup_stage

    status = inputs["status"]
    chain = cleanup_stage.ChainStatus(
        state=status.state, task=status.pipeline_task_name or "", message=status.error_message or ""
    )
    res = cleanup_stage.run(
        status=chain,
        kfp_run=inputs["kfp_run"],
        datasets=[str(d) for d in inputs["datasets"]],
        checkpoint_root=inputs["checkpoint_root"],
        keep_checkpoints=inputs["keep_checkpoints"],
        multi_node=inputs["multi_node"],
        trainjob_namespace=inputs["trainjob_namespace"],
    )
    if not res.failed:
        return f"chain ended {status.state}: nothing to clean up"
    return (
        f"chain ended {status.state} ({chain.message or 'no message'}): runs marked FAILED "
        f"{res.runs_marked or 'none'}; TrainJobs deleted: {res.trainjobs_deleted or 'none'}; "
        f"checkpoints removed: {res.checkpoints_removed or 'none (kept or absent)'}"
    )
