"""Train stage: prepared set -> trained network (model.pt), checkpoints, history, MLflow run.

    python -m spherereid.stages.train --params params.yaml --prepared data/prepared/synthetic \
        --out outputs/synthetic/train

A killed run resumes from <out>/checkpoints/last.pt when started again with the same params.

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
from contextlib import ExitStack
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
from ..entrypoint import run_cli
from ..reporting.plots import plot_history
from ..tracking import runs
from ..training import checkpoint, distributed
from ..training.loop import EpochStats
from ..training.trainer import FitResult, fit
from .artifacts import LINEAGE_FILE, MODEL_FILE, RESULT_FILE, RUN_FILE

log = logging.getLogger(__name__)


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
    """Train on the prepared set's train split; log params and per-epoch metrics to MLflow.

    Under torchrun every rank calls this; rank 0 alone writes files and MLflow, other ranks return a
    result without a run id."""
    ctx = distributed.setup(train.device)  # a plain single process outside torchrun
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
    if ctx.is_main:
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
    # One MLflow run is one training from scratch: a resumed checkpoint continues the run recorded beside
    # it (same params); training from scratch (no checkpoint, changed code or data, fewer epochs) starts a
    # new run. The copy in out_dir is what later stages read.
    ckpt_ref = out_dir / "checkpoints" / RUN_FILE
    holder: dict[str, runs.RunRef] = {}
    stack = ExitStack()

    def on_start(resumed: list[EpochStats]) -> None:
        before = _recorded_run_id(ckpt_ref) if resumed else None
        ref = runs.start_or_resume_run(
            ckpt_ref,
            experiment=f"spherereid-{dataset}",
            run_name=f"{dataset}-{model.backbone}-{model.head}",
            params=flat,
            tags=tags,
            resume=bool(resumed),
        )
        holder["ref"] = ref
        runs.write_run_ref(out_dir / RUN_FILE, ref)
        if resumed and ref.run_id != before:  # a continued checkpoint under new params: whole curves
            runs.set_tags(ref, {"resumed_from_epoch": len(resumed), "resumed_from_run": before or "unknown"})
            for stats in resumed:
                on_epoch(stats)
        runs.log_dataset(
            ref,
            name=f"{dataset}-train",
            source=str(prepared_dir.resolve()),
            digest=fingerprint,
            context="train",
        )
        stack.enter_context(runs.system_metrics(ref))

    def on_epoch(stats: EpochStats) -> None:
        runs.log_metrics(
            holder["ref"],
            {
                "loss": stats.loss,
                "accuracy": stats.accuracy,
                "lr": stats.lr,
                "images_per_second": stats.images_per_second,
            },
            step=stats.epoch,
        )

    train_tf, _ = build_transforms(**dataclasses.asdict(transform))
    try:
        with stack:
            result = _fit(prepared, split, out_dir, fingerprint, sections, train_tf, on_epoch, on_start, ctx)
    except BaseException as exc:
        if "ref" in holder:
            runs.finish_run(holder["ref"], status="FAILED")
        if ctx.distributed and distributed.is_peer_failure(exc):
            raise distributed.DistributedError(
                f"rank {ctx.rank} of {ctx.world_size} stopped: another training process failed or died "
                f"({' '.join(str(exc).split())[:200]}); its own error is above"
            ) from None
        raise
    if not ctx.is_main:
        last = result.history[-1]
        return TrainResult(out_dir / MODEL_FILE, len(result.history), last.loss, last.accuracy, "")
    ref = holder["ref"]
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
    res = TrainResult(out_dir / MODEL_FILE, len(result.history), last.loss, last.accuracy, ref.run_id)
    (out_dir / RESULT_FILE).write_text(
        json.dumps({**dataclasses.asdict(res), "model_path": MODEL_FILE}) + "\n"
    )
    return res


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


def _recorded_run_id(path: Path) -> str | None:
    try:
        return runs.read_run_ref(path).run_id
    except runs.RunRefError:
        return None


def _fit(
    prepared, split, out_dir: Path, fingerprint: str, sections: dict, train_tf, on_epoch, on_start, ctx
) -> FitResult:
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
        precision=train.precision,
        cuda_graphs=train.cuda_graphs,
        checkpoint_every=train.checkpoint_every,
        on_epoch=on_epoch,
        on_start=on_start,
        dist=ctx,
        sync_batchnorm=train.sync_batchnorm,
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
        with distributed.process_group(p.train.device) as ctx:  # several ranks under torchrun
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
        if ctx.is_main:
            print(
                f"trained {res.epochs} epochs: loss {res.final_loss:.4f}, accuracy {res.final_accuracy:.3f}; "
                f"model {res.model_path}; MLflow run {res.run_id}"
            )
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
