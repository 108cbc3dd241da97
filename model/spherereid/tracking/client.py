"""The connection to MLflow: the tracking URI, a client, retries with backoff, and every use of MLflow's
private API.

The tracking URI comes from MLFLOW_TRACKING_URI; unset, it is `sqlite:///<repo root>/mlflow.db` with
artifacts in `<repo root>/mlartifacts`, whatever the working directory; a DVC experiment run in a
temporary copy (`dvc exp run --queue` / `--temp`) uses the store of the repository it was queued in.
Calls to a tracking server are retried with exponential backoff on connection errors (and 429/5xx once
MLflow's own retries ran out), then fail with `TrackingUnavailableError`; an answer that is not MLflow's
(wrong port, an auth proxy) raises `TrackingServerError`. Both name the URI in one line, without its
credentials (redaction.redact_uri, as every message and file naming a URI). mlflow is imported lazily.

MLflow's private API is used here only (tests/unit/test_mlflow_compat.py fails on a private MLflow name
anywhere else), written against mlflow 3.17.2 (pinned in requirements.txt); each function of the last
section says which internal it needs and why. On an MLflow upgrade check these first.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ..contracts import MLFLOW_BACKOFF_ENV as ENV_BACKOFF
from ..contracts import MLFLOW_RETRIES_ENV as ENV_RETRIES
from ..contracts import TRACKING_URI_ENV
from ..redaction import redact_uri
from . import tags

log = logging.getLogger(__name__)

T = TypeVar("T")

ARTIFACTS_DIR = "mlartifacts"


class TrackingUnavailableError(RuntimeError):
    """The tracking server cannot be reached after all retries."""


class TrackingServerError(RuntimeError):
    """Something answers at the tracking URI, but not as a (reachable, authorised) MLflow API."""


# ---------------------------------------------------------------- URIs and clients


class TrackingLocationError(RuntimeError):
    """The default store's folder cannot be trusted (a DVC experiment's deleted temporary copy)."""


DVC_EXPERIMENTS_TMP = (".dvc", "tmp", "exps")  # DVC's temporary experiment workspaces live under it


def _nearest_checkout(start: Path) -> Path:
    """The nearest parent of `start` (itself included) holding params.yaml or .git; else `start`."""
    for folder in (start, *start.parents):
        if _is_checkout(folder):
            return folder
    return start


def _is_checkout(folder: Path) -> bool:
    return (folder / "params.yaml").is_file() or (folder / ".git").exists()


def _experiments_owner(folder: Path) -> Path | None:
    """`<repo>` when `folder` lies under `<repo>/.dvc/tmp/exps/` (a queued or `--temp` experiment's
    workspace, which DVC deletes after the run); else None."""
    parts, n = folder.parts, len(DVC_EXPERIMENTS_TMP)
    for i in range(len(parts) - n, 0, -1):
        if parts[i : i + n] == DVC_EXPERIMENTS_TMP:
            return Path(*parts[:i])
    return None


def _dvc_parent_repo(nearest: Path) -> Path | None:
    """The repository DVC names in DVC_ROOT for an experiment's stage (DVC_EXP_BASELINE_REV set) when it
    is not `nearest`: DVC points it at the parent repository of a temporary workspace."""
    root = os.environ.get("DVC_ROOT", "").strip()
    if not root or not os.environ.get("DVC_EXP_BASELINE_REV", "").strip():
        return None
    parent = Path(root).resolve()
    return None if parent == nearest else parent


def repo_root(start: Path | None = None) -> Path:
    """The project checkout `start` (default CWD) belongs to: the nearest parent holding params.yaml or
    .git (else `start`), except in a DVC experiment's temporary workspace (`dvc exp run --queue` or
    `--temp`: `<repo>/.dvc/tmp/exps/...`, or DVC_ROOT naming another repository), whose repository is the
    one that queued it. A temporary workspace whose repository cannot be found raises
    TrackingLocationError (its own folder is deleted after the run, and the runs with it)."""
    start = (start or Path.cwd()).resolve()
    nearest = _nearest_checkout(start)
    owner, parent = _experiments_owner(nearest), _dvc_parent_repo(nearest)
    if owner is None and parent is None:
        return nearest
    for candidate in (parent, owner):
        if candidate is not None and _experiments_owner(candidate) is None and _is_checkout(candidate):
            return candidate
    raise TrackingLocationError(
        f"{nearest}: a DVC experiment's temporary workspace (deleted after the run) whose repository "
        "cannot be found for the default MLflow store; set MLFLOW_TRACKING_URI (e.g. "
        "sqlite:///<repo>/mlflow.db or the tracking server) and queue the experiment again"
    )


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, or `sqlite:///<repo root>/mlflow.db` (absolute) when unset."""
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    if uri:
        return uri
    return f"sqlite:///{repo_root() / 'mlflow.db'}"


def local_artifact_root(uri: str) -> Path | None:
    """For a sqlite store, `<folder of the .db>/mlartifacts` (absolute); None for servers."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri[len("sqlite:///") :])
    return (db if db.is_absolute() else Path.cwd() / db).resolve().parent / ARTIFACTS_DIR


def _drop_urllib3_retry(record: logging.LogRecord) -> bool:
    """Drop urllib3's per-retry warnings (a repr of the whole exception each); with_retries logs one
    short line per attempt instead and ends with the one-line error."""
    return not str(record.msg).startswith("Retrying")


def _prepare_env() -> None:
    pool_log = logging.getLogger("urllib3.connectionpool")
    if _drop_urllib3_retry not in pool_log.filters:
        pool_log.addFilter(_drop_urllib3_retry)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's own HTTP retries default to 7 with factor 2 (minutes on a refused connection):
    # keep one for a passing 429/5xx and let with_retries handle unreachable servers (2 would double the
    # time to the one-line error: ~30 s instead of ~17 s with the default 5 attempts).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def client(uri: str | None = None) -> Any:
    """An `MlflowClient` for `uri` (default: `tracking_uri()`), tracking and registry alike."""
    _prepare_env()
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    if redact_uri(uri) != uri:  # MLflow prints "View run ... at: <URI>" (credentials and all) otherwise
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


# ---------------------------------------------------------------- retries


def is_connection_error(exc: BaseException) -> bool:
    import requests

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        # RetryError: MLflow's own retries on 429/5xx ran out (a restarting server behind its ingress)
        unavailable = requests.ConnectionError | requests.Timeout | requests.exceptions.RetryError
        if isinstance(cur, unavailable | ConnectionError):
            return True
        text = str(cur)
        if "Failed to establish a new connection" in text or "Connection refused" in text:
            return True
        if "Max retries exceeded" in text and "error responses" in text:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def non_api_status(exc: BaseException) -> int | None:
    """The HTTP status of a non-MLflow (non-JSON) error answer, e.g. a wrong port or an auth proxy."""
    from mlflow.exceptions import MlflowException, RestException

    if not isinstance(exc, MlflowException) or isinstance(exc, RestException):
        return None
    found = re.match(r"API request to endpoint \S+ failed with error code (\d+)", str(exc.message))
    return int(found.group(1)) if found else None


def with_retries(
    fn: Callable[[], T], *, what: str, uri: str, attempts: int | None = None, base_delay: float | None = None
) -> T:
    """Call `fn()`; on a connection error wait base_delay * 2**i and try again, `attempts` times in all.

    Defaults: 5 attempts, 1 s (env SPHEREREID_MLFLOW_RETRIES / SPHEREREID_MLFLOW_BACKOFF override).
    Raises TrackingUnavailableError naming `uri` (redacted) when every attempt failed; other errors pass
    through.
    """
    attempts = int(os.environ.get(ENV_RETRIES, 5)) if attempts is None else attempts
    base_delay = float(os.environ.get(ENV_BACKOFF, 1.0)) if base_delay is None else base_delay
    attempts, uri = max(1, attempts), redact_uri(uri)  # `uri` names the server in messages only
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - filtered just below
            if not is_connection_error(exc):
                status = non_api_status(exc)
                if status is None:
                    raise
                raise TrackingServerError(
                    f"MLflow tracking server {uri} answered HTTP {status} without an MLflow response "
                    f"({what}): check MLFLOW_TRACKING_URI (host, port, path prefix) and, for a server with "
                    "authentication, MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
                ) from None
            if i == attempts - 1:
                raise TrackingUnavailableError(
                    f"MLflow tracking server {uri} unreachable ({what}; {attempts} attempts): the stage "
                    f"outputs on disk are kept; start the server or set MLFLOW_TRACKING_URI to a reachable "
                    f"one (unset it for the local sqlite store), then run the stage again"
                ) from None
            delay = base_delay * 2**i
            log.warning(
                "%s: %s unreachable (attempt %d/%d), retrying in %.1f s", what, uri, i + 1, attempts, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# ---------------------------------------------------------------- MLflow's private API (mlflow 3.17.2)


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
        mlflow.set_tracking_uri(saved_global)  # type: ignore[arg-type]  # None: back to "never set"
        if saved_env is None:
            os.environ.pop(TRACKING_URI_ENV, None)
        else:
            os.environ[TRACKING_URI_ENV] = saved_env


def dataset_input(source: str, *, name: str, digest: str, context: str) -> Any:
    """A run's dataset input, recorded without loading the data: `source` a local path or a URI, `digest`
    its content hash (the first 36 characters are kept), `context` train / query / gallery / evaluation."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]  # registered
    from mlflow.entities import DatasetInput, InputTag

    where = LocalArtifactDatasetSource(source) if "://" not in source else resolve_dataset_source(source)
    dataset = MetaDataset(where, name=name, digest=digest[:36])  # type: ignore[abstract]  # profile: None
    return DatasetInput(dataset_entity(dataset), tags=[InputTag(tags.DATASET_CONTEXT, context)])


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


def link_model_version(c: Any, model_id: str, name: str, version: int) -> None:
    """Record registered version `name` v`version` on LoggedModel `model_id`, as MLflow's own
    `mlflow.register_model` does, so the Models view's "Registered models" column shows it.

    mlflow 3.17.2: the LoggedModel tag `mlflow.utils.mlflow_tags.MLFLOW_MODEL_VERSIONS`
    ("mlflow.modelVersions"), a JSON list of {"name", "version"}. The tracking server's create-version
    handler writes it, but a client on a direct sqlite/database store does not (only the fluent
    register_model does). Idempotent: a version already listed (int or str) is kept once."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    tags = c.get_logged_model(model_id).tags or {}
    listed = json.loads(tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    if not any(e.get("name") == name and str(e.get("version")) == str(version) for e in listed):
        entry = {"name": name, "version": int(version)}
        c.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps([*listed, entry])})
