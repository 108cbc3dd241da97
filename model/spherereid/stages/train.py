"""Train stage: prepared set -> trained network (model.pt), checkpoints, history, MLflow run.

    python -m spherereid.stages.train --params params.yaml --prepared data/prepared/synthetic \
        --out outputs/synthetic/train

A killed run resumes from <out>/checkpoints/last.pt when started again with the same params. SIGTERM stops
after the current step with exit 143 (training/termination.py); a tracking server still down at the end
leaves model.pt and <out>/checkpoints/spool/ and exits non-zero naming the replay command, and a rerun
drains the spool without retraining; a last.pt that fails verification falls back to last.prev.pt (one
warning), and with both damaged training is refused unless train.on_corrupt_checkpoint is restart. One
training holds <out> at a time (<out>/.train.lock, train_lock.py): a second one is refused in one line
(docs/faults.md).

Several processes (DistributedDataParallel; NCCL on GPUs, gloo on the CPU; the global batch stays P x K):

    torchrun --standalone --nproc-per-node 2 -m spherereid.stages.train --params ... --prepared ... --out ...

Rank 0 alone writes the checkpoints, the MLflow run, the model and the history.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import FitConfig, TransformConfig, load_params
from ..contracts import HISTORY_FILE, HISTORY_PLOT, LINEAGE_FILE, MODEL_FILE, RESULT_FILE, RUN_FILE, TrainDir
from ..data.manifest import PreparedSet
from ..entrypoint import run_cli
from ..reporting.plots import plot_history
from ..tracking.runs import TrainRunLogger
from ..training import distributed, saved_model
from ..training.step import EpochStats
from ..training.trainer import FitResult, fit
from . import train_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how training ended."""

    model_path: Path
    epochs: int
    final_loss: float
    final_accuracy: float
    run_id: str


def run(*, prepared_dir: Path, out_dir: Path, config: FitConfig) -> TrainResult:
    """Train on the prepared set's train split with `config` (FitConfig.from_params), logging to its MLflow
    run (see tracking.runs). Under torchrun every rank calls this; rank 0 alone writes files and MLflow
    (others return no run id). The output folder is held for the whole run (train_lock): a second training
    on it is refused."""
    ctx = distributed.setup(config.train.device)  # a plain single process outside torchrun
    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    prepared = PreparedSet(prepared_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with train_lock.holding(out_dir, ctx):  # before anything is written there
        return _train(prepared, prepared_dir, out_dir, config, ctx)


def _train(
    prepared: PreparedSet, prepared_dir: Path, out_dir: Path, config: FitConfig, ctx: distributed.DistContext
) -> TrainResult:
    """`run` inside the held output folder."""
    split = prepared.split("train")
    dataset, fingerprint = prepared.info.get("dataset", prepared_dir.name), prepared.fingerprint()
    if ctx.is_main:
        _write_lineage(out_dir / LINEAGE_FILE, dataset, fingerprint, config.transform)
    logger = TrainRunLogger(
        run_file=out_dir / RUN_FILE,
        checkpoint_run_file=TrainDir(out_dir).checkpoint_run_file,
        prepared_dir=prepared_dir,
        dataset=dataset,
        fingerprint=fingerprint,
        config=config,
    )
    with distributed.explain_peer_failure(ctx), logger:
        result = fit(
            images=split.images,
            labels=split.labels,
            num_classes=prepared.num_classes,
            checkpoint_path=TrainDir(out_dir).last_checkpoint,
            config=config,
            data_fingerprint=fingerprint,
            on_epoch=logger.epoch,
            on_start=logger.start,
            dist=ctx,
        )
    if not ctx.is_main:
        return _result(result, out_dir, run_id="")
    _write_outputs(result, prepared.num_classes, out_dir)
    return _write_result(_result(result, out_dir, run_id=logger.finish([out_dir / HISTORY_PLOT])), out_dir)


def read_result(out_dir: Path) -> TrainResult:
    """The TrainResult rank 0 wrote to `out_dir` (after a run under torchrun or a TrainJob)."""
    path = Path(out_dir) / RESULT_FILE
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise distributed.DistributedError(
            f"{path}: no train result ({exc}); the distributed training did not finish, see its log"
        ) from None
    return TrainResult(**{**values, "model_path": Path(out_dir) / values["model_path"]})


def _result(result: FitResult, out_dir: Path, run_id: str) -> TrainResult:
    last = result.history[-1]
    return TrainResult(out_dir / MODEL_FILE, len(result.history), last.loss, last.accuracy, run_id)


def _write_result(res: TrainResult, out_dir: Path) -> TrainResult:
    """Record `res` for `read_result` (model path relative to `out_dir`)."""
    (out_dir / RESULT_FILE).write_text(
        json.dumps({**dataclasses.asdict(res), "model_path": MODEL_FILE}) + "\n"
    )
    return res


def _write_lineage(path: Path, dataset: str, fingerprint: str, transform: TransformConfig) -> None:
    """The data the model was trained on and its input size (register reads it)."""
    lineage = {
        "dataset": dataset,
        "dataset_hash": fingerprint,
        "height": transform.crop_height,
        "width": transform.crop_width,
    }
    path.write_text(json.dumps(lineage, indent=2) + "\n")


def _write_outputs(result: FitResult, num_classes: int, out_dir: Path) -> None:
    """model.pt (constructor, CPU weights, class count), history.csv and history.png."""
    saved_model.save_model(result.model, num_classes, out_dir / MODEL_FILE)
    _write_history(result.history, out_dir / HISTORY_FILE)
    plot_history(result.history, out_dir / HISTORY_PLOT)


def _write_history(history: Sequence[EpochStats], path: Path) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", "loss", "accuracy", "lr", "images_per_second"])
        for h in history:
            writer.writerow(
                [
                    h.epoch + 1,
                    f"{h.loss:.6f}",
                    f"{h.accuracy:.6f}",
                    f"{h.lr:.8g}",
                    f"{h.images_per_second:.1f}",
                ]
            )


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.stages.train") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)"
    )
    parser.add_argument("--prepared", type=Path, required=True, help="prepared dataset directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)

    def body() -> int:
        p = load_params(args.params)
        with distributed.process_group(p.train.device) as ctx:  # several ranks under torchrun
            res = run(prepared_dir=args.prepared, out_dir=args.out, config=FitConfig.from_params(p))
        if ctx.is_main:
            print(
                f"trained {res.epochs} epochs: loss {res.final_loss:.4f}, accuracy {res.final_accuracy:.3f}; "
                f"model {res.model_path}; MLflow run {res.run_id}"
            )
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
