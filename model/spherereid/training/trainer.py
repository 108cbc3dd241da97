"""Fit a ReID network with checkpoints (every `train.checkpoint_every` epochs, written in the background)
and exact resume.

A checkpoint holds model, classifier (loss), optimizer, scheduler, sampler and RNG state, the epoch,
the history and the resume key (see `resume`). Resuming from it continues the same random streams: on
the CPU an interrupted run ends with bit-identical weights to an uninterrupted one. On CUDA only up to the
run-to-run noise of non-deterministic kernels, as two uninterrupted CUDA runs differ: fit turns
cudnn.benchmark on (autotuned kernels may differ per run), and even torch.use_deterministic_algorithms(True)
would also need CUBLAS_WORKSPACE_CONFIG=:4096:8 (or :16:8) in the environment and cudnn.benchmark off.

One fast path on every device: autocast in `train.precision` (auto: bf16 on CUDA devices of compute
capability >= 8.0 and on native-bf16 CPUs, else fp32; fp16 with a GradScaler on CUDA only), channels_last
and fused Adam, the same TrainStep code on the CPU and CUDA. CUDA-only: the training device is made the
current CUDA device first, cudnn.benchmark and, with `train.cuda_graphs` (true, or auto: one process), the
step replayed from a graph.
Every `train.checkpoint_every` epochs (and after the last) the state is snapshotted to host memory and
written in the background. Labels are checked once, loss and accuracy are read once per epoch.

With several processes (see `distributed`) the model and the classifier train under
DistributedDataParallel (`train.sync_batchnorm`: SyncBatchNorm, CUDA only), each rank takes its share of
the P x K batch, epoch figures are reduced over ranks, rank 0 alone writes checkpoints and calls
`on_start`/`on_epoch`, and every rank resumes from the same checkpoint (any process count).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import FitConfig as FitConfig  # re-exported: fit's argument, defined with the params
from ..config import TrainConfig
from ..data.batches import TrainBatches
from ..data.sampler import build_sampler
from ..data.transforms import TrainTransform, build_transforms
from ..device import activate_device, check_device, effective_precision, memory_format, resolve_device
from ..modeling import losses
from ..modeling.net import ReIDNet
from . import checkpoint, distributed, resume, termination
from .loop import train_one_epoch
from .optim import build_optimizer
from .resume import TrainingParts
from .schedule import build_scheduler
from .step import EpochStats, TrainStep, resolve_cuda_graphs

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What fit() returns: the trained network, its classifier and the per-epoch history."""

    model: ReIDNet
    criterion: torch.nn.Module
    history: list[EpochStats] = field(default_factory=list)
    resumed_from_epoch: int = 0


@dataclass(frozen=True)
class Placement:
    """Where and how training runs: the process context, its device and the precision policy there."""

    ctx: distributed.DistContext
    info: str  # the device checked, in words
    precision: str  # the precision used (train.precision resolved on this device: never 'auto')
    graphs: bool  # CUDA graphs: CUDA, asked for, and a single process (DDP's all-reduce runs eagerly)
    memory_format: torch.memory_format

    @property
    def device(self) -> torch.device:
        return self.ctx.device


def fit(
    *,
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    checkpoint_path: Path,
    config: FitConfig,
    data_fingerprint: str = "",
    on_epoch: Callable[[EpochStats], None] | None = None,
    on_start: Callable[[list[EpochStats]], None] | None = None,
    progress: bool = True,
    dist: distributed.DistContext | None = None,
) -> FitResult:
    """Train on uint8 `images` (N, H, W, 3) with `labels` (N,) in 0..num_classes-1 for `train.epochs`.

    Resumes from `checkpoint_path` when its resume key (configuration, `data_fingerprint`, training code)
    is this training's and it holds at most `train.epochs` epochs; otherwise starts fresh. Calls `on_start`
    once with the resumed history (empty: from scratch) and `on_epoch` after each epoch's checkpoint."""
    train = config.train
    place = _placement(train, dist)
    losses.validate_labels(torch.as_tensor(np.asarray(labels), dtype=torch.int64), num_classes)
    train_tf, _ = build_transforms(**dataclasses.asdict(config.transform))
    key = resume.resume_key(
        num_classes=num_classes, config=config, transform=train_tf, precision=place.precision,
        data_fingerprint=data_fingerprint,
    )  # fmt: skip
    parts = _build_parts(labels, num_classes, config, place)
    history, start_epoch = resume.resume_or_retire(
        checkpoint_path, key, train.epochs, parts, place.ctx, train.on_corrupt_checkpoint
    )
    if on_start is not None and place.ctx.is_main:
        on_start(list(history))
    _log_start(place, start_epoch, train)
    loop = EpochLoop(images, labels, train_tf, parts, place, config, key, checkpoint_path, progress)
    with termination.handling():  # SIGTERM: stop after the step, keep a complete checkpoint, exit 143
        try:
            for epoch in range(start_epoch, train.epochs):
                stats = loop.run(epoch, history)
                if on_epoch is not None and place.ctx.is_main:
                    on_epoch(stats)
                termination.stop_here(f"epoch {epoch + 1}")
        finally:
            loop.close()  # the last submitted checkpoint is complete on disk, even when training failed
    return FitResult(parts.model, parts.criterion, history=history, resumed_from_epoch=start_epoch)


def _placement(train: TrainConfig, dist: distributed.DistContext | None) -> Placement:
    """The process context (a single process without `dist`), its checked device and the precision there.
    The device is made the process's current CUDA device before any CUDA work (`activate_device`)."""
    ctx = dist if dist is not None else distributed.DistContext(device=resolve_device(train.device))
    graphs = resolve_cuda_graphs(train.cuda_graphs, ctx.device, ctx.world_size, train.precision)
    dev = activate_device(ctx.device)
    info = check_device(dev)  # a GPU this build cannot drive fails here, not hours later
    precision = effective_precision(train.precision, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # static P x K shapes: pick the fastest kernels once
    layout = memory_format(dev, precision)
    return Placement(ctx=ctx, info=info, precision=precision, graphs=graphs, memory_format=layout)


def _build_parts(labels: np.ndarray, num_classes: int, config: FitConfig, place: Placement) -> TrainingParts:
    """Network, classifier, optimizer, P x K sampler, schedule and augmentation stream, freshly seeded
    (the same initial weights on every rank)."""
    dev, ctx, optim, schedule = place.device, place.ctx, config.optim, config.schedule
    seed = config.train.seed
    torch.manual_seed(seed)
    net = ReIDNet(**dataclasses.asdict(config.model))
    net = net.to(dev, memory_format=place.memory_format)  # type: ignore[call-overload]
    loss = config.loss
    criterion = losses.build_loss(
        loss.type,
        embedding_dim=net.embedding_dim,
        num_classes=num_classes,
        scale=loss.scale,
        margin=loss.margin,
    ).to(dev)
    criterion.check_labels = False  # type: ignore[assignment]  # validated once for the whole dataset
    params = list(net.parameters()) + list(criterion.parameters())
    optimizer = build_optimizer(
        params, lr=optim.lr, weight_decay=optim.weight_decay, betas=(optim.betas[0], optim.betas[1]),
        eps=optim.eps, device=dev, capturable=place.graphs,
    )  # fmt: skip
    sampler = build_sampler(
        config.sampler, labels.tolist(), seed=seed, rank=ctx.rank, world_size=ctx.world_size
    )
    scheduler = build_scheduler(
        optimizer, base_lr=optim.lr, warmup_start_lr=schedule.warmup_start_lr,
        warmup_epochs=schedule.warmup_epochs, milestones=schedule.milestones, gamma=schedule.gamma,
        step_per=schedule.step_per, iters_per_epoch=len(sampler),
    )  # fmt: skip
    aug_rng = distributed.rank_generator(seed + 1, ctx)  # rank 0: seed + 1, as a single process
    scaler = torch.amp.GradScaler(dev.type) if place.precision == "fp16" else None
    return TrainingParts(
        model=net, criterion=criterion, optimizer=optimizer, scheduler=scheduler, sampler=sampler,
        aug_rng=aug_rng, scaler=scaler, device=dev,
    )  # fmt: skip


def _log_start(place: Placement, start_epoch: int, train: TrainConfig) -> None:
    log.info(
        "training on %s: precision %s, CUDA graphs %s, epochs %d..%d, checkpoint every %d epoch(s)",
        place.info, place.precision, "on" if place.graphs else "off", start_epoch + 1, train.epochs,
        train.checkpoint_every,
    )  # fmt: skip


def _train_step(parts: TrainingParts, place: Placement, sync_batchnorm: bool, batch: int) -> TrainStep:
    """The step over the (DDP-wrapped, with several processes) model and classifier; `batch` is the
    global P x K batch."""
    per_rank = batch // max(place.ctx.world_size, 1)
    return TrainStep(
        model=distributed.wrap(
            parts.model, place.ctx, sync_batchnorm=sync_batchnorm, per_rank_batch=per_rank
        ),
        criterion=distributed.wrap(parts.criterion, place.ctx),
        optimizer=parts.optimizer,
        stats=distributed.RankAccumulator(place.device, place.ctx),
        precision=place.precision,
        scaler=parts.scaler,
        cuda_graphs=place.graphs,
    )


class EpochLoop:
    """The epochs of one fit over uint8 `images` (N, H, W, 3) and `labels` (N,): the step (DDP-wrapped with
    several processes), the prefetched batches and the checkpoint writer. Each epoch: train, reduce its
    figures over ranks, step the schedule, checkpoint every `train.checkpoint_every` epochs and after the
    last (in the background), log."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: TrainTransform,
        parts: TrainingParts,
        place: Placement,
        config: FitConfig,
        key: dict[str, Any],
        checkpoint_path: Path,
        progress: bool,
    ):
        self.parts, self.place = parts, place
        self.step = _train_step(parts, place, config.train.sync_batchnorm, config.sampler.batch_size)
        self.batches = TrainBatches(
            images,
            labels,
            parts.sampler,
            transform,
            parts.aug_rng,
            place.device,
            memory_format=place.memory_format,
        )
        self.train, self.step_per = config.train, config.schedule.step_per
        self.key, self.checkpoint_path, self.progress = key, checkpoint_path, progress
        self.writer = checkpoint.CheckpointWriter()

    def run(self, epoch: int, history: list[EpochStats]) -> EpochStats:
        """Train epoch `epoch` (0-based), append its figures to `history` and return them."""
        parts, ctx = self.parts, self.place.ctx
        parts.sampler.set_epoch(epoch)
        stats = train_one_epoch(
            step=self.step,
            scheduler=parts.scheduler,
            batches=self.batches.epoch(epoch),
            epoch=epoch,
            step_per_iteration=self.step_per == "iteration",
            progress=self.progress and ctx.is_main,
        )
        stats = distributed.reduce_epoch_stats(stats, ctx)  # the same figures on every rank
        if self.step_per != "iteration":
            parts.scheduler.step()
        history.append(stats)
        epochs = self.train.epochs
        if (epoch + 1) % self.train.checkpoint_every == 0 or epoch + 1 == epochs or termination.should_stop():
            state = resume.training_state(epoch + 1, parts, history, self.key)
            distributed.add_rank_rng(state, parts.aug_rng, ctx)  # collective: every rank's stream
            if ctx.is_main:
                self.writer.submit_snapshot(state, self.checkpoint_path)
        _log_epoch(stats, epochs, self.place)
        return stats

    def close(self) -> None:
        """Stop the batch prefetch and wait for the last checkpoint write (raising its error)."""
        self.batches.close()
        self.writer.close()


def _log_epoch(stats: EpochStats, epochs: int, place: Placement) -> None:
    log.info(
        "epoch %d/%d loss %.4f acc %.3f lr %.2e (%.0f img/s, %s %s%s)",
        stats.epoch + 1, epochs, stats.loss, stats.accuracy, stats.lr, stats.images_per_second,
        place.device.type, place.precision, ", graphs" if place.graphs else "",
    )  # fmt: skip
