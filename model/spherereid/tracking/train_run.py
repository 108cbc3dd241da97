"""The training's MLflow run, as the train stage drives it: `TrainRunLogger`.

The run's lifecycle across the stages (one MLflow run is one training from scratch):
- train opens it (`start`, called by fit once it knows whether a checkpoint resumes): a resumed checkpoint
  continues the run recorded beside it (same params), training from scratch (no checkpoint, changed code
  or data, fewer epochs) starts a new one. It logs params, lineage tags, the datasets panel, system metrics
  and per-epoch metrics, marks the run FAILED when training raises (a server that cannot be told is a
  warning: the training's own error, or a SIGTERM's exit 143, stands), and leaves it RUNNING on success;
  `<train_dir>/mlflow_run.json` carries it on. Per-epoch metrics and the resume tags go through a
  `MetricSpool` in `<train_dir>/checkpoints/spool/` (beside the checkpoint, kept by DVC's persist), so a
  tracking outage never blocks training; if the server is still down at the end, `finish` raises
  `TrackingBacklog` (one line naming the spool and the replay command) after model.pt is written, and a
  rerun of the stage resumes the finished checkpoint (no training) and drains the spool. Each epoch's
  metrics are logged once: an epoch trained again after a kill (its checkpoint was not yet durable, or
  `checkpoint_every` > 1) is not logged again when the run already holds it (the spool's journal, which
  travels with the checkpoint, and the run's metric history say so);
- evaluate reopens it by id and logs the metrics and plots into it;
- register logs the model into it (a model version) and ends it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from ..contracts import SPOOL_CLOSE_ENV as CLOSE_ENV
from ..device import effective_precision, resolve_device
from ..redaction import redact_uri
from ..training.step import EpochStats
from ..training.termination import Terminated
from ..training.trainer import FitConfig
from . import runs
from .connection import client, with_retries
from .spool import MetricSpool

log = logging.getLogger(__name__)
SPOOL_DIR = "spool"
EPOCH_METRICS = ("loss", "accuracy", "lr", "images_per_second")  # logged at step = 0-based epoch


class TrackingBacklog(RuntimeError):
    """Training finished but the tracking server is still down: the spool keeps the unsent records."""


def run_params(config: FitConfig, dataset: str, fingerprint: str) -> dict[str, Any]:
    """`section.key -> value` for every field of the training's sections, the dataset's name and hash, and
    `train.precision_used`: train.precision resolved on the training device (auto -> bf16 | fp32)."""
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
        self.tags = {
            "dataset": dataset,
            "dataset_hash": fingerprint,
            "params_hash": runs.params_hash(params),
            "seed": str(config.train.seed),
            "precision": str(params["train.precision_used"]),
            "git_commit": runs.git_commit(Path.cwd()) or "unknown",
        }
        dvc_hash = runs.dvc_data_hash(prepared_dir)
        if dvc_hash:
            self.tags["dvc_data_hash"] = dvc_hash
        self.ref: runs.RunRef | None = None
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
        self.ref = runs.start_or_resume_run(
            self.checkpoint_run_file,
            experiment=f"spherereid-{self.dataset}",
            run_name=self.run_name,
            params=self.params,
            tags=self.tags,
            resume=bool(resumed),
        )
        runs.write_run_ref(self.run_file, self.ref)
        spool = self.checkpoint_run_file.parent / SPOOL_DIR
        self.spool = MetricSpool(spool, self.ref.run_id, self.ref.tracking_uri)  # sends a left-over backlog
        self.logged = self._already_logged(continued=bool(resumed) and self.ref.run_id == before)
        if resumed and self.ref.run_id != before:  # a continued checkpoint under new params: whole curves
            self.spool.set_tags({"resumed_from_epoch": len(resumed), "resumed_from_run": before or "unknown"})
            for stats in resumed:
                self.epoch(stats)
        runs.log_dataset(
            self.ref,
            name=f"{self.dataset}-train",
            source=str(self.prepared_dir.resolve()),
            digest=self.fingerprint,
            context="train",
        )
        self._monitor.enter_context(runs.system_metrics(self.ref))

    def epoch(self, stats: EpochStats) -> None:
        """One epoch's loss, accuracy, learning rate and throughput, at step `stats.epoch` (spooled: returns
        without waiting for the server). A value the run already holds at that step is not logged again:
        an epoch logged before a kill that came before its checkpoint was durable is trained again on
        resume, and keeps its first values (equal on the CPU: the resume is exact)."""
        self._started()
        assert self.spool is not None
        values = dict(
            zip(EPOCH_METRICS, (stats.loss, stats.accuracy, stats.lr, stats.images_per_second), strict=True)
        )
        todo = {key: value for key, value in values.items() if (key, stats.epoch) not in self.logged}
        if len(todo) < len(values):
            log.info(
                "epoch %d is already in MLflow run %s; not logged again", stats.epoch + 1, self.ref.run_id
            )
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
                    lambda key=key: c.get_metric_history(ref.run_id, key),
                    what=f"read run {ref.run_id}'s {key} history",
                    uri=ref.tracking_uri,
                )
                logged.update((key, int(m.step)) for m in history)
        return logged

    def fail(self, attempts: int | None = None) -> None:
        """Mark the run FAILED (nothing when it was never opened, e.g. on ranks other than 0)."""
        if self.ref is not None:
            runs.finish_run(self.ref, status="FAILED", attempts=attempts)

    def _fail_quietly(self, *, once: bool) -> None:
        """`fail()` when the block raised: a server that cannot be told is a warning, so the block's own
        error (or a SIGTERM's exit 143) stands. After a SIGTERM one attempt (the grace period is short)."""
        from mlflow.exceptions import MlflowException

        errs = (MlflowException, runs.TrackingUnavailableError, runs.TrackingServerError, runs.RunRefError)
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
            runs.log_artifact(ref, path)
        return ref.run_id

    def _started(self) -> runs.RunRef:
        if self.ref is None:
            raise RuntimeError("the training's MLflow run is not open: start() comes first (fit calls it)")
        return self.ref


def _recorded_run_id(path: Path) -> str | None:
    try:
        return runs.read_run_ref(path).run_id
    except runs.RunRefError:
        return None


def _close_timeout() -> float:
    raw = os.environ.get(CLOSE_ENV, "30")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise TrackingBacklog(f"{CLOSE_ENV}={raw!r}: expected seconds (default 30)") from None
