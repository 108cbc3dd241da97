"""MLflow tracking without global state: every call opens the run by id, so stages in separate
processes (train, evaluate, register; DVC or KFP) log to the same run.

The URI, the client and the retries live in connection.py (re-exported here); MLflow's private API,
where it is needed, in mlflow_compat.py.
Logging calls use the URI of the RunRef: `read_run_ref` gives the URI recorded by train (where the run
lives), unless MLFLOW_TRACKING_URI is set, which always wins; a run missing there raises RunRefError.
mlflow_run.json holds the URI without credentials (redaction.redact_uri): they come from the environment
(MLFLOW_TRACKING_URI, or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) in every stage.
Nothing happens at import time; mlflow is imported inside the functions.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..contracts import TRACKING_URI_ENV
from ..redaction import redact_uri
from . import plugin
from .connection import (  # noqa: F401 - re-exported: the tracking API in one place
    ARTIFACTS_DIR,
    ENV_BACKOFF,
    ENV_RETRIES,
    T,
    TrackingServerError,
    TrackingUnavailableError,
    client,
    is_connection_error,
    local_artifact_root,
    non_api_status,
    repo_root,
    tracking_uri,
    with_retries,
)
from .lineage import dvc_data_hash, flatten_params, git_commit, params_hash  # noqa: F401 - re-exported
from .mlflow_compat import dataset_entity
from .mlflow_compat import system_metrics as _system_metrics

log = logging.getLogger(__name__)


class RunRefError(ValueError):
    """mlflow_run.json is missing or unreadable: the message names the file and the fix."""


@dataclass(frozen=True)
class RunRef:
    """Where an MLflow run lives; written to <train_dir>/mlflow_run.json by the train stage."""

    run_id: str
    experiment_id: str
    tracking_uri: str


# ---------------------------------------------------------------- run references


def write_run_ref(path: str | Path, ref: RunRef) -> None:
    """Write `{"run_id", "experiment_id", "tracking_uri"}` as JSON (atomically), the URI redacted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    record = {**asdict(ref), "tracking_uri": redact_uri(ref.tracking_uri)}
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)


def read_run_ref(path: str | Path) -> RunRef:
    """Read mlflow_run.json; a missing or corrupt file raises RunRefError naming it.

    A set MLFLOW_TRACKING_URI replaces the recorded URI (the environment says where to log; a run that
    is not there fails with RunRefError on first use instead of silently logging elsewhere), with a
    warning when it is another store than the recorded one (not merely the recorded URI with credentials).
    """
    ref = _read_run_ref(Path(path))
    env_uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    if not env_uri or env_uri == ref.tracking_uri:
        return ref
    if redact_uri(env_uri) != redact_uri(ref.tracking_uri):
        log.warning(
            "%s: run %s was recorded at %s; using MLFLOW_TRACKING_URI=%s",
            path,
            ref.run_id,
            redact_uri(ref.tracking_uri),
            redact_uri(env_uri),
        )
    return RunRef(ref.run_id, ref.experiment_id, env_uri)


def _read_run_ref(path: Path) -> RunRef:
    if not path.is_file():
        raise RunRefError(f"{path}: MLflow run reference not found; run the train stage first")
    try:
        raw = json.loads(path.read_text())
        return RunRef(
            run_id=str(raw["run_id"]),
            experiment_id=str(raw["experiment_id"]),
            tracking_uri=str(raw["tracking_uri"]),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise RunRefError(
            f"{path}: not a valid MLflow run reference ({type(exc).__name__}: {exc}); "
            "run the train stage first"
        ) from None


# ---------------------------------------------------------------- runs

# MLflow's experiment tag for the UI layout: the training layout (Runs / Models) rather than the GenAI one.
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


def ensure_training_kind(c, experiment_id: str) -> None:
    """Tag the experiment `mlflow.experimentKind=custom_model_development` unless it already is."""
    exp = c.get_experiment(experiment_id)
    if (exp.tags or {}).get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
        c.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)


def ui_base(tracking_uri: str) -> str:
    """Where the MLflow UI of `tracking_uri` is served: the server itself for an http(s) store (without
    credentials or query), `mlflow ui`'s default address for a local store."""
    from urllib.parse import urlsplit

    if not tracking_uri.startswith(("http://", "https://")):
        return DEFAULT_UI
    parts = urlsplit(redact_uri(tracking_uri))
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def ui_url(tracking_uri: str, experiment_id: str, view: str = "runs") -> str:
    """The experiment's `view` page ("runs" or "models") in the UI's training layout."""
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/{view}?workflowType=machine_learning"


def version_ui_url(tracking_uri: str, name: str, version: int) -> str:
    """The UI page of registered model version `name` v`version` (its model card)."""
    return f"{ui_base(tracking_uri)}/#/models/{name}/versions/{version}?workflowType=machine_learning"


def _get_or_create_experiment(c, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = c.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            c.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    root = local_artifact_root(uri)
    location = (root / name).as_uri() if root is not None else None
    try:
        return c.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: TRAINING_KIND}
        )
    except MlflowException as exc:  # another process created it in between
        exp = c.get_experiment_by_name(name)
        if exp is None:
            raise exc from None
        return exp.experiment_id


def start_run(
    *, experiment: str, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str]
) -> RunRef:
    """Create (or get) the experiment, create a run, log flattened params and tags; the run stays open."""
    uri = tracking_uri()

    def go() -> RunRef:
        from mlflow.entities import Param

        c = client(uri)
        exp_id = plugin.experiment_id(c) or _get_or_create_experiment(c, experiment, uri)
        ensure_training_kind(c, exp_id)
        run = c.create_run(exp_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
        flat = flatten_params(params)
        items = [Param(k, v) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            c.log_batch(run.info.run_id, params=items[i : i + 100])
        return RunRef(run.info.run_id, exp_id, uri)

    ref = with_retries(go, what=f"start run in experiment {experiment}", uri=uri)
    log.info("MLflow run %s (experiment %s) at %s", ref.run_id, ref.experiment_id, redact_uri(uri))
    return ref


def start_or_resume_run(
    ref_path: str | Path,
    *,
    experiment: str,
    run_name: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    resume: bool = True,
) -> RunRef:
    """With `resume` (the trainer continues a checkpoint), reuse the run in `ref_path` when it exists on
    the current tracking URI with the same params; otherwise start a new run: one run is one training
    from scratch. Writes `ref_path` either way. Under KFP's MLflow plugin a new run is a child of the
    task's run; the pipeline run id becomes tag kfp_run_id (see plugin.py)."""
    ref_path = Path(ref_path)
    tags = {**plugin.context_tags(), **tags}
    uri = tracking_uri()
    if resume and ref_path.is_file():
        try:
            old = read_run_ref(ref_path)
        except RunRefError as exc:
            log.warning("%s; starting a new run", exc)
            old = None
        if old is not None and old.tracking_uri == uri and _resumable(old, flatten_params(params)):
            set_tags(old, {k: str(v) for k, v in tags.items()})
            with_retries(
                lambda: client(uri).update_run(old.run_id, status="RUNNING"), what="resume run", uri=uri
            )
            log.info("resuming MLflow run %s", old.run_id)
            return old
    ref = start_run(experiment=experiment, run_name=run_name, params=params, tags=tags)
    write_run_ref(ref_path, ref)
    return ref


def _resumable(ref: RunRef, flat: dict[str, str]) -> bool:
    from mlflow.exceptions import MlflowException

    def get():
        try:
            return client(ref.tracking_uri).get_run(ref.run_id)
        except MlflowException as exc:
            if is_connection_error(exc):
                raise
            return None

    run = with_retries(get, what="look up run", uri=ref.tracking_uri)
    if run is None or run.info.lifecycle_stage == "deleted":
        log.info("run %s not found on %s; starting a new run", ref.run_id, redact_uri(ref.tracking_uri))
        return False
    if run.data.params != flat:
        log.info("params differ from run %s; starting a new run", ref.run_id)
        return False
    return True


def _on_run(ref: RunRef, fn: Callable[[], T], *, what: str, attempts: int | None = None) -> T:
    """`with_retries(fn)` for a call on run `ref`; a run the store does not hold raises RunRefError."""
    from mlflow.exceptions import MlflowException

    try:
        return with_retries(fn, what=what, uri=ref.tracking_uri, attempts=attempts)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise RunRefError(
            f"MLflow run {ref.run_id} not found at {redact_uri(ref.tracking_uri)} ({what}): mlflow_run.json "
            "points to a run this store does not hold (another MLFLOW_TRACKING_URI, or a deleted store); set "
            "MLFLOW_TRACKING_URI to the store the train stage used, or run the train stage again"
        ) from None


def log_metrics(ref: RunRef, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log `metrics` (name -> float) at `step` (default 0) in one batch."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, int(step or 0)) for k, v in metrics.items()]
    _on_run(ref, lambda: client(ref.tracking_uri).log_batch(ref.run_id, metrics=items), what="log metrics")


def log_artifact(ref: RunRef, path: str | Path, artifact_path: str | None = None) -> None:
    """Upload one file (or a directory) to the run's artifacts under `artifact_path`."""
    path = Path(path)
    c = client(ref.tracking_uri)
    c_fn = c.log_artifacts if path.is_dir() else c.log_artifact
    _on_run(ref, lambda: c_fn(ref.run_id, str(path), artifact_path), what=f"upload {path.name}")


def set_tags(ref: RunRef, tags: Mapping[str, Any]) -> None:
    """Set run tags (values stringified)."""
    from mlflow.entities import RunTag

    items = [RunTag(k, str(v)) for k, v in tags.items()]
    if not items:
        return
    _on_run(ref, lambda: client(ref.tracking_uri).log_batch(ref.run_id, tags=items), what="set tags")


def get_run_tags(ref: RunRef) -> dict[str, str]:
    """The run's tags (without MLflow's own `mlflow.*`)."""
    run = _on_run(ref, lambda: client(ref.tracking_uri).get_run(ref.run_id), what="read run")
    return {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}


def get_run_params(ref: RunRef) -> dict[str, str]:
    """The run's params (flattened keys, string values)."""
    run = _on_run(ref, lambda: client(ref.tracking_uri).get_run(ref.run_id), what="read run")
    return dict(run.data.params)


def finish_run(ref: RunRef, status: str = "FINISHED", attempts: int | None = None) -> None:
    """Mark the run terminated with `status` (FINISHED, FAILED, KILLED); `attempts` as in with_retries."""
    _on_run(
        ref,
        lambda: client(ref.tracking_uri).set_terminated(ref.run_id, status=status),
        what="finish run",
        attempts=attempts,
    )


def log_dataset(ref: RunRef, *, name: str, source: str, digest: str, context: str) -> None:
    """Record a dataset the run used (the run's Datasets panel) without loading it: `digest` is the
    manifest fingerprint or DVC md5, `context` train / query / gallery."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    where = LocalArtifactDatasetSource(source) if "://" not in source else resolve_dataset_source(source)
    dataset = MetaDataset(where, name=name, digest=digest[:36])
    item = DatasetInput(dataset_entity(dataset), tags=[InputTag("mlflow.data.context", context)])
    _on_run(ref, lambda: client(ref.tracking_uri).log_inputs(ref.run_id, datasets=[item]), what="log dataset")


@contextmanager
def system_metrics(ref: RunRef, *, interval: float = 10.0) -> Iterator[None]:
    """Log CPU, memory, disk and network use (and GPU utilisation and memory through nvidia-ml-py when a
    GPU is there) as `system/*` metrics of the run every `interval` s while the block runs."""
    with _system_metrics(ref.run_id, tracking_uri=ref.tracking_uri, interval=interval):
        yield
