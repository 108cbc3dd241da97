"""Fit a ReID network with checkpoints (every `checkpoint_every` epochs, written in the background) and
exact resume.

A checkpoint holds model, classifier (loss), optimizer, scheduler, sampler and RNG state, the epoch,
the history and the configuration. Resuming from it continues the same random streams, so an
interrupted run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.batches import TrainBatches
from ..data.sampler import BalancedIdentitySampler
from ..data.transforms import TrainTransform
from ..device import check_device, effective_precision, resolve_device
from ..modeling.losses import build_loss, validate_labels
from ..modeling.net import ReIDNet
from . import checkpoint, distributed
from .loop import (
    EpochStats,
    TrainStep,
    build_optimizer,
    load_optimizer_state,
    train_one_epoch,
)
from .schedule import build_scheduler

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1
# The subpackages whose code decides what training computes: a checkpoint written by other code is stale.
FINGERPRINT_SUBPACKAGES = ("data", "modeling", "training")


def code_fingerprint(package_root: Path | None = None) -> str:
    """sha256 (first 16 hex) of every .py file under the data, modeling and training subpackages (path and
    bytes, in sorted order): part of the resume key, so changed code (e.g. a new loss) retrains instead of
    resuming a finished checkpoint. `package_root` defaults to the installed `spherereid` folder."""
    root = package_root or Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for sub in FINGERPRINT_SUBPACKAGES:
        for path in sorted((root / sub).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dataclass
class FitResult:
    """What fit() returns: the trained network, its classifier and the per-epoch history."""

    model: ReIDNet
    criterion: torch.nn.Module
    history: list[EpochStats] = field(default_factory=list)
    resumed_from_epoch: int = 0


def fit(
    *,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    checkpoint_path: Path,
    model_kwargs: dict[str, Any],
    loss_kwargs: dict[str, Any],
    sampler_kwargs: dict[str, Any],
    optim_kwargs: dict[str, Any],
    schedule_kwargs: dict[str, Any],
    transform: TrainTransform,
    epochs: int,
    data_fingerprint: str = "",
    seed: int = 0,
    device: str = "auto",
    precision: str = "fp32",
    cuda_graphs: bool = False,
    checkpoint_every: int = 1,
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_start: Callable[[list[EpochStats]], None] | None = None,
    progress: bool = True,
    dist: distributed.DistContext | None = None,
    sync_batchnorm: bool = False,
) -> FitResult:
    """Train on uint8 `images` (N, H, W, 3) with `labels` (N,) in 0..num_classes-1.

    Resumes from `checkpoint_path` when it exists and was written with the same configuration,
    `data_fingerprint` and training code, and holds at most `epochs` epochs (`epochs` may grow; fewer
    epochs than the checkpoint holds train from scratch); otherwise starts fresh. Calls `on_start` once
    with the resumed history (empty: training from scratch) and `on_epoch` after each epoch's checkpoint.

    On CUDA: autocast in `precision` (bf16 | fp16 with a GradScaler; fp32 elsewhere), channels_last, fused
    Adam, cudnn.benchmark and, with `cuda_graphs`, the whole step replayed from a CUDA graph. Every
    `checkpoint_every` epochs (and after the last) the state is snapshotted to host memory and written in
    the background. Labels are checked once here, loss and accuracy are read once per epoch.

    With `dist` (several processes, see training.distributed) the model and the classifier train under
    DistributedDataParallel (`sync_batchnorm`: SyncBatchNorm, CUDA only), each rank takes its share of the
    P x K batch, epoch figures are reduced over ranks, rank 0 alone writes checkpoints and calls
    `on_start`/`on_epoch`, and every rank resumes from the same checkpoint (any process count).
    """
    ctx = dist if dist is not None else distributed.DistContext(device=resolve_device(device))
    dev = ctx.device
    device_info = check_device(dev)  # a GPU this build cannot drive fails here, not hours later
    used_precision = effective_precision(precision, dev)
    graphs = bool(cuda_graphs) and dev.type == "cuda" and not ctx.distributed  # DDP's all-reduce: eager
    if checkpoint_every < 1:
        raise ValueError(
            f"checkpoint_every must be >= 1 epochs, got {checkpoint_every}; check train.checkpoint_every"
        )
    validate_labels(torch.as_tensor(np.asarray(labels), dtype=torch.int64), num_classes)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # static P x K shapes: pick the fastest kernels once
    memory_format = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    config = _plain(
        {
            "num_classes": num_classes,
            "model": model_kwargs,
            "loss": loss_kwargs,
            "sampler": sampler_kwargs,
            "optim": optim_kwargs,
            "schedule": schedule_kwargs,
            "transform": {k: v for k, v in vars(transform).items() if k != "normalize"},
            "seed": seed,
            "precision": used_precision,
            "data": data_fingerprint,
            "code": code_fingerprint(),
        }
    )  # lists, not tuples: compares equal to the copy read back from a checkpoint
    torch.manual_seed(seed)
    model = ReIDNet(**model_kwargs).to(dev, memory_format=memory_format)
    criterion = build_loss(
        loss_kwargs["type"],
        embedding_dim=model.embedding_dim,
        num_classes=num_classes,
        scale=loss_kwargs["scale"],
        margin=loss_kwargs["margin"],
    ).to(dev)
    criterion.check_labels = False  # validated above, once for the whole dataset
    params = list(model.parameters()) + list(criterion.parameters())
    optimizer = build_optimizer(
        params,
        lr=optim_kwargs["lr"],
        weight_decay=optim_kwargs["weight_decay"],
        betas=tuple(optim_kwargs["betas"]),
        device=dev,
        capturable=graphs,
    )
    sampler = BalancedIdentitySampler(
        labels.tolist(), p=sampler_kwargs["p"], k=sampler_kwargs["k"], seed=seed, rank=ctx.rank,
        world_size=ctx.world_size,
    )  # fmt: skip
    step_per_iteration = schedule_kwargs["step_per"] == "iteration"
    scheduler = build_scheduler(
        optimizer,
        base_lr=optim_kwargs["lr"],
        warmup_start_lr=schedule_kwargs["warmup_start_lr"],
        warmup_epochs=schedule_kwargs["warmup_epochs"],
        milestones=schedule_kwargs["milestones"],
        gamma=schedule_kwargs["gamma"],
        step_per=schedule_kwargs["step_per"],
        iters_per_epoch=len(sampler),
    )
    aug_rng = distributed.rank_generator(seed + 1, ctx)  # rank 0: seed + 1, as a single process
    scaler = torch.amp.GradScaler(dev.type) if used_precision == "fp16" else None
    history: list[EpochStats] = []
    start_epoch = 0

    if checkpoint_path.is_file():
        state = checkpoint.load(checkpoint_path, map_location=dev)
        same_config = state.get("format") == CHECKPOINT_FORMAT and state.get("config") == config
        if same_config and int(state["epoch"]) > epochs:  # never return a longer-trained model
            stale = checkpoint_path.with_name(checkpoint_path.name + ".stale")
            distributed.retire(checkpoint_path, stale, ctx)
            log.warning(
                "%s holds %d epochs but %d were asked; moved to %s, training from scratch",
                checkpoint_path,
                int(state["epoch"]),
                epochs,
                stale,
            )
        elif same_config:
            model.load_state_dict(state["model"])
            criterion.load_state_dict(state["criterion"])
            load_optimizer_state(optimizer, state["optimizer"], dev)  # keeps fused / graph-ready settings
            scheduler.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            distributed.restore_rank_rng(aug_rng, state, ctx)  # this rank's stream
            torch.set_rng_state(state["torch_rng"].cpu())
            if dev.type == "cuda" and "cuda_rng" in state:
                torch.cuda.set_rng_state(state["cuda_rng"].cpu(), dev)
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            history = [EpochStats(**h) for h in state["history"]]
            start_epoch = int(state["epoch"])
            log.info("resuming from %s after epoch %d", checkpoint_path, start_epoch)
        else:
            stale = checkpoint_path.with_name(checkpoint_path.name + ".stale")
            distributed.retire(checkpoint_path, stale, ctx)
            log.warning(
                "%s was written with another configuration; moved to %s, starting fresh",
                checkpoint_path,
                stale,
            )

    if on_start is not None and ctx.is_main:
        on_start(list(history))
    log.info(
        "training on %s: precision %s, CUDA graphs %s, epochs %d..%d, checkpoint every %d epoch(s)",
        device_info,
        used_precision,
        "on" if graphs else "off",
        start_epoch + 1,
        epochs,
        checkpoint_every,
    )
    step = TrainStep(
        model=distributed.wrap(model, ctx, sync_batchnorm=sync_batchnorm),
        criterion=distributed.wrap(criterion, ctx),
        optimizer=optimizer,
        stats=distributed.RankAccumulator(dev, ctx),
        precision=used_precision,
        scaler=scaler,
        cuda_graphs=graphs,
    )
    batches = TrainBatches(images, labels, sampler, transform, aug_rng, dev, memory_format=memory_format)
    writer = checkpoint.CheckpointWriter()
    try:
        for epoch in range(start_epoch, epochs):
            sampler.set_epoch(epoch)
            stats = train_one_epoch(
                step=step,
                scheduler=scheduler,
                batches=batches.epoch(epoch),
                epoch=epoch,
                step_per_iteration=step_per_iteration,
                progress=progress and ctx.is_main,
            )
            stats = distributed.reduce_epoch_stats(stats, ctx)  # the same figures on every rank
            if not step_per_iteration:
                scheduler.step()
            history.append(stats)
            if (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs:
                state = training_state(
                    epoch=epoch + 1,
                    model=model,
                    criterion=criterion,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    sampler=sampler,
                    aug_rng=aug_rng,
                    scaler=scaler,
                    history=history,
                    config=config,
                    device=dev,
                )
                distributed.add_rank_rng(state, aug_rng, ctx)  # collective: every rank's stream
                if ctx.is_main:
                    writer.submit(checkpoint.snapshot(state), checkpoint_path)
            log.info(
                "epoch %d/%d loss %.4f acc %.3f lr %.2e (%.0f img/s, %s %s%s)",
                epoch + 1,
                epochs,
                stats.loss,
                stats.accuracy,
                stats.lr,
                stats.images_per_second,
                dev.type,
                used_precision,
                ", graphs" if graphs else "",
            )
            if on_epoch is not None and ctx.is_main:
                on_epoch(stats)
    finally:
        batches.close()
        writer.close()  # the last submitted checkpoint is complete on disk, even when training failed
    return FitResult(model=model, criterion=criterion, history=history, resumed_from_epoch=start_epoch)


def training_state(
    *,
    epoch: int,
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sampler: BalancedIdentitySampler,
    aug_rng: torch.Generator,
    scaler: torch.amp.GradScaler | None,
    history: list[EpochStats],
    config: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    """Everything a resume needs after `epoch` epochs (live tensors: `checkpoint.snapshot` it before an
    asynchronous write). Holds the CPU RNG and, on CUDA, the device's RNG state."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": model.state_dict(),
        "criterion": criterion.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "sampler": sampler.state_dict(),
        "aug_rng": aug_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": [dataclasses.asdict(h) for h in history],
        "config": config,
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def _plain(value: Any) -> Any:
    """Tuples -> lists recursively, so a config compares equal after a checkpoint round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
