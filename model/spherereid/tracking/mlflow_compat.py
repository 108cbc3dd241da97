"""Every use of MLflow's private API in the library, in one place (tests/unit/test_mlflow_compat.py fails
on a private MLflow name anywhere else).

Written against mlflow 3.17.2 (pinned in requirements.txt); each function says which internal it needs
and why. On an MLflow upgrade check these first: a moved internal breaks here, under a name that says so.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..contracts import TRACKING_URI_ENV

log = logging.getLogger(__name__)


def _global_tracking_uri() -> str | None:
    """mlflow's process-global tracking URI as set by set_tracking_uri, or None when never set.

    mlflow 3.17.2: `mlflow.tracking._tracking_service.utils._tracking_uri`; the public get_tracking_uri()
    resolves the default instead, so restoring it would pin that default for the rest of the process."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    return tracking_utils._tracking_uri


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """mlflow's global tracking URI set to `uri` for the block (log_model has no URI argument); the
    previous global and the MLFLOW_TRACKING_URI variable (which set_tracking_uri also writes) are
    restored afterwards."""
    import mlflow

    saved_global, saved_env = _global_tracking_uri(), os.environ.get(TRACKING_URI_ENV)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_global)
        if saved_env is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = saved_env


def dataset_entity(dataset: Any) -> Any:
    """The `mlflow.entities.Dataset` of an `mlflow.data` dataset, for MlflowClient.log_inputs.

    mlflow 3.17.2: `Dataset._to_mlflow_entity()`; the public mlflow.log_input needs the fluent active
    run, and the stages log by run id."""
    return dataset._to_mlflow_entity()


@contextmanager
def system_metrics(run_id: str, *, tracking_uri: str, interval: float = 10.0) -> Iterator[None]:
    """Log CPU, memory, disk and network use (and GPU utilisation and memory through nvidia-ml-py when a
    GPU is there) as `system/*` metrics of run `run_id` every `interval` s while the block runs.

    mlflow 3.17.2: `mlflow.system_metrics.system_metrics_monitor.SystemMetricsMonitor` (public is only
    start_run(log_system_metrics=True), which needs the fluent active run), and its collect_metrics /
    aggregate_metrics / publish_metrics / mlflow_logger for one last sample at the end. Monitoring never
    stops the block: a failure is a warning."""
    monitor = None
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(
            run_id, sampling_interval=interval, resume_logging=True, tracking_uri=tracking_uri
        )
        monitor.start()
    except Exception as exc:  # noqa: BLE001 - monitoring must never stop training
        log.warning("system metrics are not recorded for run %s: %s", run_id, exc)
        monitor = None
    try:
        yield
    finally:
        if monitor is not None:
            _finish(monitor)


def _finish(monitor: Any) -> None:
    """Stop the monitor and publish one last sample, so a block shorter than the interval leaves one."""
    monitor.finish()
    try:
        monitor.collect_metrics()
        monitor.publish_metrics(monitor.aggregate_metrics())
        monitor.mlflow_logger.flush()
    except Exception as exc:  # noqa: BLE001
        log.warning("last system metrics sample not recorded: %s", exc)


def link_model_version(client: Any, model_id: str, name: str, version: int) -> None:
    """Record registered version `name` v`version` on LoggedModel `model_id`, as MLflow's own
    `mlflow.register_model` does, so the Models view's "Registered models" column shows it.

    mlflow 3.17.2: the LoggedModel tag `mlflow.utils.mlflow_tags.MLFLOW_MODEL_VERSIONS`
    ("mlflow.modelVersions"), a JSON list of {"name", "version"}. The tracking server's create-version
    handler writes it, but a client on a direct sqlite/database store does not (only the fluent
    register_model does). Idempotent: a version already listed (int or str) is kept once."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    tags = client.get_logged_model(model_id).tags or {}
    listed = json.loads(tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    if not any(e.get("name") == name and str(e.get("version")) == str(version) for e in listed):
        entry = {"name": name, "version": int(version)}
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*listed, entry])})
