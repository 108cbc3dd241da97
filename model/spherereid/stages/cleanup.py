"""After a failed or cancelled pipeline run: what the ExitHandler's final task undoes (KFP only).

KFP 2.17 allows an ExitHandler only at a pipeline's outermost scope, so one final task covers every
dataset of the run. After a failure or cancellation it
- marks the MLflow runs the pipeline run left RUNNING (their tags.KFP_RUN, see tracking/runs.py) FAILED,
  tagged with the failed task and its message (tags.failure_tags; runs that finished, e.g. another
  dataset's, stay);
- deletes the Kubeflow Trainer TrainJobs multi-node train tasks made (named from run id and dataset);
- removes the run's checkpoint folder on the PVC (<checkpoint_root>/<run id>) unless `keep_checkpoints`
  (the default: a retry of the run resumes from it).
A run that succeeded is left alone.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..launch.launcher import TrainJobLauncher, current_namespace, in_cluster_api_client
from ..launch.trainjob import job_name
from ..tracking import runs, tags
from ..tracking.client import client, with_retries
from ..tracking.client import tracking_uri as default_tracking_uri

log = logging.getLogger(__name__)

FAILED_STATES = frozenset({"FAILED", "CANCELED", "CANCELLED", "CANCELING", "ERROR"})


@dataclass(frozen=True)
class ChainStatus:
    """The chain's end as PipelineTaskFinalStatus tells it (state, the task named, its error)."""

    state: str
    task: str = ""
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.state.upper() in FAILED_STATES


@dataclass(frozen=True)
class CleanupResult:
    """What was undone (empty on success)."""

    failed: bool
    runs_marked: list[str] = field(default_factory=list)
    trainjobs_deleted: list[str] = field(default_factory=list)
    checkpoints_removed: str = ""


def mark_runs_failed(
    *, kfp_run: str, experiments: list[str], status: ChainStatus, tracking_uri: str | None = None
) -> list[str]:
    """Set every RUNNING run of pipeline run `kfp_run` (tags.KFP_RUN) in `experiments` (names) to FAILED;
    their ids."""
    uri = tracking_uri or default_tracking_uri()

    def go() -> list[str]:
        c = client(uri)
        ids = [e.experiment_id for name in experiments if (e := c.get_experiment_by_name(name)) is not None]
        extra = runs.plugin_experiment_id(c) if runs.plugin_run_id() else ""
        ids += [extra] if extra and extra not in ids else []
        if not ids:
            return []
        running = f"{tags.tag_filter(tags.KFP_RUN, kfp_run)} and attributes.status = 'RUNNING'"
        found = c.search_runs(ids, filter_string=running)
        failure = tags.failure_tags(status.task, status.message or status.state)
        for run in found:
            for key, value in failure.items():
                c.set_tag(run.info.run_id, key, value)
            c.set_terminated(run.info.run_id, status="FAILED")
        return [run.info.run_id for run in found]

    marked = with_retries(go, what=f"mark the runs of pipeline run {kfp_run} FAILED", uri=uri)
    for run_id in marked:
        log.info("MLflow run %s marked FAILED (task %s)", run_id, status.task or "unknown")
    return marked


def remove_checkpoints(checkpoint_root: str, kfp_run: str) -> str:
    """Delete the run's folder <checkpoint_root>/<kfp_run>; its path, or '' when there was none."""
    if not checkpoint_root or not kfp_run.strip("./"):
        return ""
    folder = Path(checkpoint_root) / kfp_run
    if not folder.is_dir():
        return ""
    shutil.rmtree(folder)
    log.info("removed checkpoint folder %s", folder)
    return str(folder)


def delete_trainjob(kfp_run: str, dataset: str, namespace: str = "", launcher=None) -> str:
    """Delete this chain's TrainJob (a missing one is fine); its name. `launcher` defaults to in-cluster."""
    name = job_name(kfp_run, dataset)
    launcher = launcher or TrainJobLauncher(in_cluster_api_client(), namespace or current_namespace())
    launcher.delete(name)
    return name


def run(
    *,
    status: ChainStatus,
    kfp_run: str,
    datasets: list[str],
    experiment_prefix: str = "spherereid",
    checkpoint_root: str = "",
    keep_checkpoints: bool = True,
    multi_node: bool = False,
    trainjob_namespace: str = "",
) -> CleanupResult:
    """Undo what a failed run left behind (see the module docstring); nothing when it succeeded."""
    if not status.failed:
        log.info("pipeline run ended %s: nothing to clean up", status.state)
        return CleanupResult(failed=False)
    kfp_run = runs.kfp_run_id() or kfp_run  # the pod label, equal to the placeholder on a cluster
    experiments = [f"{experiment_prefix}-{dataset}" for dataset in datasets]
    marked = mark_runs_failed(kfp_run=kfp_run, experiments=experiments, status=status)
    jobs = [delete_trainjob(kfp_run, d, trainjob_namespace) for d in datasets] if multi_node else []
    removed = "" if keep_checkpoints else remove_checkpoints(checkpoint_root, kfp_run)
    if checkpoint_root and keep_checkpoints:
        log.info("kept %s/%s for a retry (keep_checkpoints_on_failure)", checkpoint_root, kfp_run)
    return CleanupResult(True, marked, jobs, removed)
