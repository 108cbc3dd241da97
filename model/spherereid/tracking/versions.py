"""The tags of a registered model version and of the run it came from: the version carries the run's
lineage (and the ONNX flavour's figures when there is one); the run records the version it became."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import runs
from .registry import RegistrationResult
from .runs import RunRef

# the run tags naming the version a training run became (tracking.xeval finds the version by them)
REGISTERED_MODEL_TAG, REGISTERED_VERSION_TAG = "registered_model", "registered_version"
LINEAGE_TAGS = ("dataset", "params_hash", "git_commit", "seed", "dvc_data_hash", "data_revision")


def version_tags(
    run_tags: Mapping[str, str], *, dataset: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The run's lineage tags (those it has of LINEAGE_TAGS), `dataset` as given, then `extra`."""
    tags = {k: run_tags[k] for k in LINEAGE_TAGS if k in run_tags}
    tags["dataset"] = dataset
    tags.update(extra or {})
    return tags


def mark_registered(ref: RunRef, reg: RegistrationResult) -> None:
    """Tag the run with the registered model, its version and the gate's verdict."""
    tags: dict[str, Any] = {
        REGISTERED_MODEL_TAG: reg.name,
        REGISTERED_VERSION_TAG: reg.version,
        "quality_gate": "passed" if reg.passed_gate else "failed",
    }
    runs.set_tags(ref, tags)
