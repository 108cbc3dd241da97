"""KFP's MLflow plugin (kubeflow/pipelines 2.17): one run tree per pipeline run, not two.

With the plugin on, the KFP server opens a parent MLflow run per pipeline run and a nested run per task,
and injects MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID and MLFLOW_RUN_ID (the task's nested run) into the
task's container. The train stage then opens its training run as a CHILD of the task's run, in the
plugin's experiment: the tree reads pipeline run -> train task -> training run. A child, not the task's
run itself, because the training run outlives the train task (evaluate and register log into it, the
cleanup task may mark it FAILED) and is resumed across retries, while the plugin closes its task run when
the task ends. Without the plugin nothing here applies: the run goes to experiment spherereid-<dataset>.

MLflow's fluent `end_run` (used inside log_model) clears MLFLOW_RUN_ID in its process; each KFP task is
its own process and the train stage reads the variable before any fluent call.

The pipeline also exposes the pod's pipeline run id as KFP_RUN_ID; it becomes the run's `kfp_run_id`
tag, by which the cleanup task finds the runs a failed pipeline run left RUNNING.
"""

from __future__ import annotations

import os
from typing import Any

from ..contracts import KFP_RUN_ENV
from ..contracts import MLFLOW_EXPERIMENT_ENV as EXPERIMENT_ENV
from ..contracts import MLFLOW_RUN_ENV as RUN_ENV

PARENT_TAG = "mlflow.parentRunId"
KFP_RUN_TAG = "kfp_run_id"
PLUGIN_RUN_TAG = "kfp_mlflow_plugin_run"


def plugin_run_id() -> str:
    """The run the plugin opened for this task (MLFLOW_RUN_ID), or '' without the plugin."""
    return os.environ.get(RUN_ENV, "").strip()


def kfp_run_id() -> str:
    """This pod's pipeline run id (KFP_RUN_ID), or ''."""
    return os.environ.get(KFP_RUN_ENV, "").strip()


def context_tags() -> dict[str, str]:
    """Tags that place a new run in the pipeline's tree: parent (plugin) and pipeline run id."""
    tags: dict[str, str] = {}
    parent = plugin_run_id()
    if parent:
        tags[PARENT_TAG] = parent
        tags[PLUGIN_RUN_TAG] = parent
    if kfp_run_id():
        tags[KFP_RUN_TAG] = kfp_run_id()
    return tags


def experiment_id(client: Any) -> str:
    """The plugin's experiment (MLFLOW_EXPERIMENT_ID, else the plugin run's), or '' without the plugin:
    a child run must live in its parent's experiment to show under it."""
    parent = plugin_run_id()
    if not parent:
        return ""
    given = os.environ.get(EXPERIMENT_ENV, "").strip()
    return given or str(client.get_run(parent).info.experiment_id)
