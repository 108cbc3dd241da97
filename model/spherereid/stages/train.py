"""Train stage: prepared set -> trained network (model.pt), checkpoints, history, MLflow run.

    python -m spherereid.stages.train --params params.yaml --prepared data/prepared/synthetic \
        --out outputs/synthetic/train

A killed run resumes from <out>/checkpoints/last.pt when started again with the same params.
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

from ..config import (
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
    load_params,
)
from ..data.manifest import PreparedSet
from ..data.transforms import build_transforms
from ..reporting.plots import plot_history
from ..tracking import runs
from ..training import checkpoint
from ..training.loop import EpochStats
from ..training.trainer import FitResult, fit
from ._cli import run_cli

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
RUN_FILE = "mlflow_run.json"
LINEAGE_FILE = "lineage.json"


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and how training ended."""

    model_path: Path
    epochs: int
    final_loss: float
    final_accuracy: float
    run_id: str


def run(
    *,
    prepared_dir: Path,
    out_dir: Path,
    model: ModelConfig,
    loss: LossConfig,
    sampler: SamplerConfig,
    optim: OptimConfig,
    schedule: ScheduleConfig,
    train: TrainConfig,
    transform: TransformConfig,
) -> TrainResult:
    """Train on the prepared set's train split; log params and per-epoch metrics to MLflow."""
    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    prepared = PreparedSet(prepared_dir)
    split = prepared.split("train")
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = prepared.info.get("dataset", prepared_dir.name)
    sections = {
        "model": model,
        "loss": loss,
        "sampler": sampler,
        "optim": optim,
        "schedule": schedule,
        "train": train,
        "transform": transform,
    }
    fingerprint = prepared.fingerprint()
    flat = {f"{name}.{k}": v for name, cfg in sections.items() for k, v in dataclasses.asdict(cfg).items()}
    flat["dataset.name"], flat["dataset.fingerprint"] = dataset, fingerprint
    lineage = {
        "dataset": dataset,
        "dataset_hash": fingerprint,
        "height": transform.crop_height,
        "width": transform.crop_width,
    }
    (out_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2) + "\n")
    tags = {
        "dataset": dataset,
        "dataset_hash": lineage["dataset_hash"],
        "params_hash": runs.params_hash(flat),
        "seed": str(train.seed),
        "git_commit": runs.git_commit(Path.cwd()) or "unknown",
    }
    dvc_hash = runs.dvc_data_hash(prepared_dir)
    if dvc_hash:
        tags["dvc_data_hash"] = dvc_hash
    # The run reference is kept beside the checkpoint (which survives a killed or re-run stage), so a
    # resumed training continues the same MLflow run; the copy in out_dir is what later stages read.
    ref = runs.start_or_resume_run(
        out_dir / "checkpoints" / RUN_FILE,
        experiment=f"spherereid-{dataset}",
        run_name=f"{dataset}-{model.backbone}-{model.head}",
        params=flat,
        tags=tags,
    )

    def on_epoch(stats: EpochStats) -> None:
        runs.log_metrics(
            ref,
            {
                "loss": stats.loss,
                "accuracy": stats.accuracy,
                "lr": stats.lr,
                "images_per_second": stats.images_per_second,
            },
            step=stats.epoch,
        )

    runs.write_run_ref(out_dir / RUN_FILE, ref)
    train_tf, _ = build_transforms(**dataclasses.asdict(transform))
    try:
        result = _fit(prepared, split, out_dir, fingerprint, sections, train_tf, on_epoch)
    except BaseException:
        runs.finish_run(ref, status="FAILED")
        raise
    net = result.model.cpu()
    checkpoint.save_atomic(
        {
            "constructor": dict(net.constructor_args),
            "state_dict": net.state_dict(),
            "num_classes": prepared.num_classes,
        },
        out_dir / MODEL_FILE,
    )
    _write_history(result.history, out_dir / "history.csv")
    plot_history(result.history, out_dir / "history.png")
    runs.log_artifact(ref, out_dir / "history.png")
    last = result.history[-1]
    return TrainResult(out_dir / MODEL_FILE, len(result.history), last.loss, last.accuracy, ref.run_id)


def _fit(prepared, split, out_dir: Path, fingerprint: str, sections: dict, train_tf, on_epoch) -> FitResult:
    train: TrainConfig = sections["train"]
    return fit(
        images=split.images,
        labels=split.labels,
        num_classes=prepared.num_classes,
        checkpoint_path=out_dir / "checkpoints" / "last.pt",
        model_kwargs=dataclasses.asdict(sections["model"]),
        loss_kwargs=dataclasses.asdict(sections["loss"]),
        sampler_kwargs=dataclasses.asdict(sections["sampler"]),
        optim_kwargs=dataclasses.asdict(sections["optim"]),
        schedule_kwargs=dataclasses.asdict(sections["schedule"]),
        transform=train_tf,
        data_fingerprint=fingerprint,
        epochs=train.epochs,
        seed=train.seed,
        device=train.device,
        amp=train.amp,
        on_epoch=on_epoch,
    )


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
        res = run(
            prepared_dir=args.prepared,
            out_dir=args.out,
            model=p.model,
            loss=p.loss,
            sampler=p.sampler,
            optim=p.optim,
            schedule=p.schedule,
            train=p.train,
            transform=p.transform,
        )
        print(
            f"trained {res.epochs} epochs: loss {res.final_loss:.4f}, accuracy {res.final_accuracy:.3f}; "
            f"model {res.model_path}; MLflow run {res.run_id}"
        )
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
