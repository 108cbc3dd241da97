"""Every MLflow tag key the project writes or reads, and the builders that put tags together.

Run tags (the training run, the ablation's parent run), model-version tags (the registry), registered-model
tags (the registry lock), experiment tags and dataset-input tags: each key is spelled here once. Writers
call a builder (`lineage_tags`, `gate_tags`, ...), readers use the constants; tests/unit/test_tag_keys.py
fails on a tag key written as a literal anywhere else. A version also carries the numeric evaluation
metrics under their own names (`metric_tags`): those names belong to the evaluation (evaluation.results).
It imports nothing of ours, so every part that may import tracking may import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# ---------------------------------------------------------------- the training run's lineage
DATASET = "dataset"
DATASET_HASH = "dataset_hash"  # the prepared set's manifest fingerprint
PARAMS_HASH = "params_hash"
SEED = "seed"
PRECISION = "precision"  # train.precision resolved on the training device
GIT_COMMIT = "git_commit"
DVC_DATA_HASH = "dvc_data_hash"  # the raw data's md5 in dvc.lock (KFP: from preprocess's metadata)
DATA_REVISION = "data_revision"  # the data repository's revision (KFP)
RESUMED_FROM_EPOCH = "resumed_from_epoch"  # a checkpoint continued under new params: where it started
RESUMED_FROM_RUN = "resumed_from_run"
UNKNOWN = "unknown"  # the value of a lineage tag whose source is missing
# the run's lineage tags a registered version copies
VERSION_LINEAGE = (DATASET, PARAMS_HASH, GIT_COMMIT, SEED, DVC_DATA_HASH, DATA_REVISION)

# ---------------------------------------------------------------- the quality gate (run and version)
QUALITY_GATE = "quality_gate"
QUALITY_GATE_REASON = "quality_gate_reason"
PASSED, FAILED = "passed", "failed"  # its values; also the evaluate task's `gate` output

# ---------------------------------------------------------------- what the run became (run tags)
REGISTERED_MODEL = "registered_model"
REGISTERED_VERSION = "registered_version"
MODEL_URI = "spherereid.model_uri"  # the logged pyfunc model
MODEL_KEY = "spherereid.model_sha256"  # sha256 of model.pt + the chain: one logged model per pair
ONNX_URI = "spherereid.onnx_model_uri"
ONNX_KEY = "spherereid.onnx_key"
ONNX_INT8_URI = "spherereid.onnx_int8_model_uri"
ONNX_INT8_KEY = "spherereid.onnx_int8_key"

# ---------------------------------------------------------------- KFP (run tags)
PARENT_RUN = "mlflow.parentRunId"  # MLflow's own: the run tree
PLUGIN_RUN = "kfp_mlflow_plugin_run"  # the task run KFP's MLflow plugin opened
KFP_RUN = "kfp_run_id"  # the pipeline run; the cleanup task finds the runs it left RUNNING by it
FAILED_TASK = "failed_task"
FAILURE_MESSAGE = "failure_message"
FAILURE_MESSAGE_CHARS = 5000

# ---------------------------------------------------------------- the ablation grid (run tags)
ABLATION = "ablation"
ABLATION_PARENT = "parent"  # the value of ABLATION on the grid's parent run
ABLATION_RESUMED = "ablation.resumed"
ABLATION_CELL = "ablation.cell"
ABLATION_SET_PREFIX = "ablation.set."  # + each override the grid ran with

# ---------------------------------------------------------------- a registered version
RUN_ID = "run_id"
PROMOTED_BY = "promoted_by"
PROMOTED_AT = "promoted_at"
PROMOTION_REASON = "promotion_reason"
PROMOTED_FROM = "promoted_from_version"
ONNX_MODEL_URI = "onnx.model_uri"
ONNX_OPSET = "onnx.opset"
ONNX_PARITY_PREFIX = "onnx.parity."  # + each parity figure
ONNX_INT8_PREFIX = "onnx.int8."  # + model_uri and each int8 figure
XEVAL_PREFIX = "xeval."  # + <test>.<metric>: the cross-dataset results
XEVAL_METRICS = ("rank1", "mAP")

# ---------------------------------------------------------------- the registry lock (tracking.registry_lock)
LOCK_OWNER = "lock.owner"  # on a ticket (a version of `<name>.lock`)
LOCK_EXPIRES = "lock.expires_ms"
LOCK_BROKEN_PREFIX = "lock.broken."  # + ticket number, on `<name>.lock`: the audit trail of breaks

# ---------------------------------------------------------------- experiments and dataset inputs
EXPERIMENT_KIND = "mlflow.experimentKind"  # MLflow's UI layout
TRAINING_KIND = "custom_model_development"  # the training layout (Runs / Models), not the GenAI one
DATASET_CONTEXT = "mlflow.data.context"  # on a run's dataset input: train / query / gallery / evaluation


def lineage_tags(
    *,
    dataset: str,
    dataset_hash: str,
    params_hash: str,
    seed: int,
    precision: str,
    git_commit: str | None,
    dvc_data_hash: str | None = None,
) -> dict[str, str]:
    """The training run's lineage (DVC_DATA_HASH only when DVC recorded one)."""
    tags = {
        DATASET: dataset,
        DATASET_HASH: dataset_hash,
        PARAMS_HASH: params_hash,
        SEED: str(seed),
        PRECISION: str(precision),
        GIT_COMMIT: git_commit or UNKNOWN,
    }
    if dvc_data_hash:
        tags[DVC_DATA_HASH] = dvc_data_hash
    return tags


def data_tags(*, dvc_data_hash: str, data_revision: str) -> dict[str, str]:
    """The raw data's DVC hash and revision as preprocess recorded them (KFP: no dvc.lock in the pod);
    the empty ones left out."""
    tags = {DVC_DATA_HASH: dvc_data_hash, DATA_REVISION: data_revision}
    return {k: v for k, v in tags.items() if v}


def resume_tags(epochs: int, run_id: str | None) -> dict[str, str]:
    """A checkpoint of run `run_id` continued by a new run after `epochs` epochs."""
    return {RESUMED_FROM_EPOCH: str(epochs), RESUMED_FROM_RUN: run_id or UNKNOWN}


def gate_verdict(passed: bool) -> str:
    return PASSED if passed else FAILED


def gate_tags(passed: bool, reason: str | None = None) -> dict[str, str]:
    """QUALITY_GATE (passed | failed) and, when given, why."""
    tags = {QUALITY_GATE: gate_verdict(passed)}
    if reason is not None:
        tags[QUALITY_GATE_REASON] = reason
    return tags


def failed_gate(tags: Mapping[str, str]) -> bool:
    """Whether a version's (or run's) tags say it failed the quality gate."""
    return tags.get(QUALITY_GATE) == FAILED


def registered_tags(name: str, version: int, passed: bool) -> dict[str, str]:
    """The run tags naming the version the run became, and the gate's verdict."""
    return {REGISTERED_MODEL: name, REGISTERED_VERSION: str(version), **gate_tags(passed)}


def registered_as(run_tags: Mapping[str, str]) -> tuple[str, int] | None:
    """(name, version) from a run's REGISTERED_MODEL / REGISTERED_VERSION tags; None without them."""
    name, version = run_tags.get(REGISTERED_MODEL), run_tags.get(REGISTERED_VERSION)
    if not name or not version:
        return None
    return name, int(version)


def version_lineage(
    run_tags: Mapping[str, str], *, dataset: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The run's lineage tags (those it has of VERSION_LINEAGE), DATASET as given, then `extra`."""
    tags = {k: run_tags[k] for k in VERSION_LINEAGE if k in run_tags}
    tags[DATASET] = dataset
    tags.update(extra or {})
    return tags


def metric_tags(metrics: Mapping[str, Any]) -> dict[str, str]:
    """The numeric metrics as version tags, under their own names (repr of the float)."""
    return {
        k: repr(float(v))
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def metric_value(version: Mapping[str, str], metric: str) -> float:
    """A metric a version carries (metric_tags); NaN when it has none or it is not a number."""
    try:
        return float(version.get(metric, "nan"))
    except ValueError:
        return math.nan


def version_tags(
    lineage: Mapping[str, Any],
    metrics: Mapping[str, Any],
    *,
    run_id: str,
    dataset_hash: str | None,
    passed: bool,
) -> dict[str, str]:
    """Every tag a registered version gets: `lineage` (version_lineage), the metrics, the run, the
    dataset hash and the gate's verdict."""
    tags = {str(k): str(v) for k, v in lineage.items()}
    tags.update(metric_tags(metrics))
    tags.update({RUN_ID: run_id, DATASET_HASH: dataset_hash or UNKNOWN, **gate_tags(passed)})
    return tags


def promotion_tags(*, by: str, at: str, reason: str, previous: int | None) -> dict[str, str]:
    """Who moved `champion` to a version, when, why and from which version."""
    return {
        PROMOTED_BY: by,
        PROMOTED_AT: at,
        PROMOTION_REASON: reason,
        PROMOTED_FROM: str(previous) if previous is not None else "none",
    }


def xeval_tags(
    results: Mapping[str, Mapping[str, float]], metrics: tuple[str, ...] = XEVAL_METRICS
) -> dict[str, str]:
    """`{test: {metric: value}}` -> `{"xeval.<test>.<metric>": "<value, 4 decimals>"}` for `metrics`."""
    return {
        f"{XEVAL_PREFIX}{test}.{metric}": f"{float(values[metric]):.4f}"
        for test, values in sorted(results.items())
        for metric in metrics
        if metric in values
    }


def run_tree_tags(*, plugin_run: str, kfp_run: str) -> dict[str, str]:
    """What places a new run in KFP's tree: its parent (the plugin's task run) and the pipeline run."""
    tags: dict[str, str] = {}
    if plugin_run:
        tags[PARENT_RUN] = plugin_run
        tags[PLUGIN_RUN] = plugin_run
    if kfp_run:
        tags[KFP_RUN] = kfp_run
    return tags


def failure_tags(task: str, message: str) -> dict[str, str]:
    """The failed task and its error (cut to FAILURE_MESSAGE_CHARS), on a run a failed pipeline left."""
    return {FAILED_TASK: task or UNKNOWN, FAILURE_MESSAGE: message[:FAILURE_MESSAGE_CHARS]}


def tag_filter(key: str, value: str) -> str:
    """A search_runs filter clause: runs whose tag `key` is `value`."""
    return f"tags.{key} = '{value}'"


def ablation_parent_tags(git_commit: str | None) -> dict[str, str]:
    return {ABLATION: ABLATION_PARENT, GIT_COMMIT: git_commit or UNKNOWN}


def ablation_resumed_tags() -> dict[str, str]:
    return {ABLATION_RESUMED: "true"}


def ablation_cell_tags(parent_run: str, cell_id: str) -> dict[str, str]:
    """A cell's training run shown under the grid's parent run."""
    return {PARENT_RUN: parent_run, ABLATION_CELL: cell_id}


def ablation_set_tags(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides every cell of the grid ran with."""
    return {f"{ABLATION_SET_PREFIX}{k}": v for k, v in overrides.items()}


def lock_ticket_tags(owner: str, expires_ms: int) -> dict[str, str]:
    return {LOCK_OWNER: owner, LOCK_EXPIRES: str(expires_ms)}
