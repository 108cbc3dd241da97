"""MLflow runs without global state: every call opens the run by id, so stages in separate processes
(train, evaluate, register; DVC or KFP) log to the same run.

The run's lifecycle across the stages (one MLflow run is one training from scratch):
- train opens it (`TrainRunLogger.start`, called by fit once it knows whether a checkpoint resumes): a
  resumed checkpoint continues the run recorded beside it (same params), training from scratch (no
  checkpoint, changed code or data, fewer epochs) starts a new one. It logs params, lineage tags, the
  datasets panel, system metrics and per-epoch metrics, marks the run FAILED when training raises (a server
  that cannot be told is a warning: the training's own error, or a SIGTERM's exit 143, stands), and leaves
  it RUNNING on success; `<train_dir>/mlflow_run.json` carries it on. Per-epoch metrics and the resume tags
  go through a `MetricSpool` in `<train_dir>/checkpoints/spool/` (beside the checkpoint, kept by DVC's
  persist), so a tracking outage never blocks training; if the server is still down at the end, `finish`
  raises `TrackingBacklog` (one line naming the spool and the replay command) after model.pt is written,
  and a rerun of the stage resumes the finished checkpoint (no training) and drains the spool. Each epoch's
  metrics are logged once: an epoch trained again after a kill (its checkpoint was not yet durable, or
  `checkpoint_every` > 1) is not logged again when the run already holds it (the spool's journal, which
  travels with the checkpoint, and the run's metric history say so);
- evaluate reopens it by id and logs the metrics and plots into it;
- register logs the model into it (a model version) and ends it.

Logging calls use the URI of the RunRef: `read_run_ref` gives the URI recorded by train (where the run
lives), unless MLFLOW_TRACKING_URI is set, which always wins; a run missing there raises RunRefError.
mlflow_run.json holds the URI without credentials (redaction.redact_uri): they come from the environment
(MLFLOW_TRACKING_URI, or MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) in every stage.

KFP's MLflow plugin (kubeflow/pipelines 2.17) opens a parent MLflow run per pipeline run and a nested run
per task, and injects MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID and MLFLOW_RUN_ID (the task's nested run)
into the task's container. The train stage then opens its training run as a CHILD of the task's run, in
the plugin's experiment: the tree reads pipeline run -> train task -> training run. A child, not the
task's run itself, because the training run outlives the train task (evaluate and register log into it,
the cleanup task may mark it FAILED) and is resumed across retries, while the plugin closes its task run
when the task ends. Without the plugin the run goes to experiment spherereid-<dataset>. MLflow's fluent
`end_run` (used inside log_model) clears MLFLOW_RUN_ID in its process; each KFP task is its own process
and the train stage reads the variable before any fluent call. The pod's pipeline run id (KFP_RUN_ID)
becomes the run's `tags.KFP_RUN` tag, by which the cleanup task finds the runs a failed pipeline run left
RUNNING. Nothing happens at import time; mlflow is imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ..config import FitConfig
from ..contracts import KFP_RUN_ENV, TRACKING_URI_ENV
from ..contracts import MLFLOW_EXPERIMENT_ENV as EXPERIMENT_ENV
from ..contracts import MLFLOW_RUN_ENV as RUN_ENV
from ..contracts import SPOOL_CLOSE_ENV as CLOSE_ENV
from ..redaction import redact_uri
from ..training.termination import Terminated
from . import client as mlflow_client
from .client import (
    TrackingServerError,
    TrackingUnavailableError,
    client,
    dataset_input,
    is_connection_error,
    local_artifact_root,
    tracking_uri,
    with_retries,
)
from .lineage import dvc_data_hash, flatten_params, git_commit, params_hash
from .spool import MetricSpool
from .tags import EXPERIMENT_KIND, TRAINING_KIND, lineage_tags, resume_tags, run_tree_tags

if TYPE_CHECKING:  # torch: only where training is logged
    from ..training.step import EpochStats

log = logging.getLogger(__name__)

T = TypeVar("T")


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


# ---------------------------------------------------------------- KFP's MLflow plugin


def plugin_run_id() -> str:
    """The run KFP's MLflow plugin opened for this task (MLFLOW_RUN_ID), or '' without the plugin."""
    return os.environ.get(RUN_ENV, "").strip()


def kfp_run_id() -> str:
    """This pod's pipeline run id (KFP_RUN_ID), or ''."""
    return os.environ.get(KFP_RUN_ENV, "").strip()


def plugin_experiment_id(c: Any) -> str:
    """The plugin's experiment (MLFLOW_EXPERIMENT_ID, else the plugin run's), or '' without the plugin:
    a child run must live in its parent's experiment to show under it."""
    parent = plugin_run_id()
    if not parent:
        return ""
    given = os.environ.get(EXPERIMENT_ENV, "").strip()
    return given or str(c.get_run(parent).info.experiment_id)


# ---------------------------------------------------------------- runs

DEFAULT_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store


def ensure_training_kind(c, experiment_id: str) -> None:
    """Tag the experiment with MLflow's training layout (EXPERIMENT_KIND) unless it already is."""
    exp = c.get_experiment(experiment_id)
    if (exp.tags or {}).get(EXPERIMENT_KIND) != TRAINING_KIND:
        c.set_experiment_tag(experiment_id, EXPERIMENT_KIND, TRAINING_KIND)


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
        return c.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: TRAINING_KIND})
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
        exp_id = plugin_experiment_id(c) or _get_or_create_experiment(c, experiment, uri)
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
    task's run, tagged with the pipeline run (see the module docstring)."""
    ref_path = Path(ref_path)
    tags = {**run_tree_tags(plugin_run=plugin_run_id(), kfp_run=kfp_run_id()), **tags}
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
    item = dataset_input(source, name=name, digest=digest, context=context)
    _on_run(ref, lambda: client(ref.tracking_uri).log_inputs(ref.run_id, datasets=[item]), what="log dataset")


@contextmanager
def system_metrics(ref: RunRef, *, interval: float = 10.0) -> Iterator[None]:
    """Log CPU, memory, disk and network use (and GPU utilisation and memory through nvidia-ml-py when a
    GPU is there) as `system/*` metrics of the run every `interval` s while the block runs."""
    with mlflow_client.system_metrics(ref.run_id, tracking_uri=ref.tracking_uri, interval=interval):
        yield


# ---------------------------------------------------------------- the training run (train stage)
SPOOL_DIR = "spool"
EPOCH_METRICS = ("loss", "accuracy", "lr", "images_per_second")  # logged at step = 0-based epoch


class TrackingBacklog(RuntimeError):
    """Training finished but the tracking server is still down: the spool keeps the unsent records."""


def run_params(config: FitConfig, dataset: str, fingerprint: str) -> dict[str, Any]:
    """`section.key -> value` for every field of the training's sections, the dataset's name and hash, and
    `train.precision_used`: train.precision resolved on the training device (auto -> bf16 | fp32)."""
    from ..device import effective_precision, resolve_device  # torch: only where training is logged

    sections = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    flat = {f"{name}.{k}": v for name, cfg in sections.items() for k, v in dataclasses.asdict(cfg).items()}
    flat["dataset.name"], flat["dataset.fingerprint"] = dataset, fingerprint
    flat["train.precision_used"] = effective_precision(
        config.train.precision, resolve_device(config.train.device)
    )
    return flat


class TrainRunLogger:
    """Opens or resumes the training's MLflow run and logs into it (rank 0 only: fit calls `start` and
    `epoch` on rank 0). A context manager around fit: on an error the run is marked FAILED; system metrics
    are recorded from `start` to the end of the block.

    `run_file` is `<out>/mlflow_run.json` (what later stages read); the run recorded beside the checkpoint
    (`<out>/checkpoints/mlflow_run.json`) is the one a resumed checkpoint continues.
    """

    def __init__(
        self,
        *,
        run_file: Path,
        checkpoint_run_file: Path,
        prepared_dir: Path,
        dataset: str,
        fingerprint: str,
        config: FitConfig,
    ):
        self.run_file, self.checkpoint_run_file = run_file, checkpoint_run_file
        self.prepared_dir, self.dataset, self.fingerprint = prepared_dir, dataset, fingerprint
        self.run_name = f"{dataset}-{config.model.backbone}-{config.model.head}"
        self.params = params = run_params(config, dataset, fingerprint)
        self.tags = lineage_tags(
            dataset=dataset,
            dataset_hash=fingerprint,
            params_hash=params_hash(params),
            seed=config.train.seed,
            precision=str(params["train.precision_used"]),
            git_commit=git_commit(Path.cwd()),
            dvc_data_hash=dvc_data_hash(prepared_dir),
        )
        self.ref: RunRef | None = None
        self.spool: MetricSpool | None = None
        self.logged: set[tuple[str, int]] = set()  # (metric, step) the run holds or the spool will send
        self.drained = False  # set when the block ends: did every spooled record reach MLflow?
        self._monitor = ExitStack()

    def __enter__(self) -> TrainRunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._monitor.close()
        if self.spool is not None:  # wait for the backlog (briefly after an error); the rest stays spooled
            self.drained = self.spool.close(timeout=5.0 if exc is not None else _close_timeout())
        if exc is not None:
            self._fail_quietly(once=isinstance(exc, Terminated))

    def start(self, resumed: list[EpochStats]) -> None:
        """Open the run (or continue the checkpoint's, when `resumed` holds its epochs) and record the
        params, tags, dataset and, on a new run continuing a checkpoint, the resumed epochs' metrics."""
        before = _recorded_run_id(self.checkpoint_run_file) if resumed else None
        self.ref = start_or_resume_run(
            self.checkpoint_run_file,
            experiment=f"spherereid-{self.dataset}",
            run_name=self.run_name,
            params=self.params,
            tags=self.tags,
            resume=bool(resumed),
        )
        write_run_ref(self.run_file, self.ref)
        spool = self.checkpoint_run_file.parent / SPOOL_DIR
        self.spool = MetricSpool(spool, self.ref.run_id, self.ref.tracking_uri)  # sends a left-over backlog
        self.logged = self._already_logged(continued=bool(resumed) and self.ref.run_id == before)
        if resumed and self.ref.run_id != before:  # a continued checkpoint under new params: whole curves
            self.spool.set_tags(resume_tags(len(resumed), before))
            for stats in resumed:
                self.epoch(stats)
        log_dataset(
            self.ref,
            name=f"{self.dataset}-train",
            source=str(self.prepared_dir.resolve()),
            digest=self.fingerprint,
            context="train",
        )
        self._monitor.enter_context(system_metrics(self.ref))

    def epoch(self, stats: EpochStats) -> None:
        """One epoch's loss, accuracy, learning rate and throughput, at step `stats.epoch` (spooled: returns
        without waiting for the server). A value the run already holds at that step is not logged again:
        an epoch logged before a kill that came before its checkpoint was durable is trained again on
        resume, and keeps its first values (equal on the CPU: the resume is exact)."""
        ref = self._started()
        assert self.spool is not None
        values = dict(
            zip(EPOCH_METRICS, (stats.loss, stats.accuracy, stats.lr, stats.images_per_second), strict=True)
        )
        todo = {key: value for key, value in values.items() if (key, stats.epoch) not in self.logged}
        if len(todo) < len(values):
            log.info("epoch %d is already in MLflow run %s; not logged again", stats.epoch + 1, ref.run_id)
        if todo:
            self.spool.log_metrics(todo, step=stats.epoch)
            self.logged.update((key, stats.epoch) for key in todo)

    def _already_logged(self, continued: bool) -> set[tuple[str, int]]:
        """(metric, step) of the epoch metrics this run holds or will: every record of it in the spool's
        journal (sent or not: the journal travels with the checkpoint) and, when a resumed checkpoint
        continues the run, its MLflow metric history (the server was just reached to reopen the run)."""
        ref, spool = self._started(), self.spool
        assert spool is not None
        logged = {
            (r.key, r.step)
            for r in spool.journal.records
            if r.run == ref.run_id and r.kind == "metric" and r.key in EPOCH_METRICS
        }
        if continued:
            c = client(ref.tracking_uri)
            for key in EPOCH_METRICS:
                history = with_retries(
                    functools.partial(c.get_metric_history, ref.run_id, key),
                    what=f"read run {ref.run_id}'s {key} history",
                    uri=ref.tracking_uri,
                )
                logged.update((key, int(m.step)) for m in history)
        return logged

    def fail(self, attempts: int | None = None) -> None:
        """Mark the run FAILED (nothing when it was never opened, e.g. on ranks other than 0)."""
        if self.ref is not None:
            finish_run(self.ref, status="FAILED", attempts=attempts)

    def _fail_quietly(self, *, once: bool) -> None:
        """`fail()` when the block raised: a server that cannot be told is a warning, so the block's own
        error (or a SIGTERM's exit 143) stands. After a SIGTERM one attempt (the grace period is short)."""
        from mlflow.exceptions import MlflowException

        errs = (MlflowException, TrackingUnavailableError, TrackingServerError, RunRefError)
        try:
            self.fail(attempts=1 if once else None)
        except errs as err:
            log.warning("run %s is not marked FAILED: %s", self.ref.run_id if self.ref else "?", err)

    def finish(self, artifacts: list[Path]) -> str:
        """Log the trained model's `artifacts` (e.g. the history plot) and return the run id. The run stays
        open: evaluate logs into it and register ends it. Raises `TrackingBacklog` when the spool was not
        drained by the end of the `with` block (it waits `SPHEREREID_SPOOL_CLOSE_S`, default 30 s)."""
        ref = self._started()
        if self.spool is not None and not self.drained:
            spool = self.spool.journal.dir
            raise TrackingBacklog(
                f"{spool}: {self.spool.pending} tracking records not sent to {redact_uri(ref.tracking_uri)} "
                f"({self.spool.why_unsent()}); the model is saved - replay with "
                f"`spherereid tracking replay {spool}` or rerun the stage (it does not retrain)"
            )
        for path in artifacts:
            log_artifact(ref, path)
        return ref.run_id

    def _started(self) -> RunRef:
        if self.ref is None:
            raise RuntimeError("the training's MLflow run is not open: start() comes first (fit calls it)")
        return self.ref


def _recorded_run_id(path: Path) -> str | None:
    try:
        return read_run_ref(path).run_id
    except RunRefError:
        return None


def _close_timeout() -> float:
    raw = os.environ.get(CLOSE_ENV, "30")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise TrackingBacklog(f"{CLOSE_ENV}={raw!r}: expected seconds (default 30)") from None
