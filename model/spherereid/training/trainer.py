"""Fit a ReID network: a recipe that reads top to bottom.

    fit(config)
      1. set up     `_placement`: the process context, its device (made the current CUDA device before any
                    CUDA work) and precision; `_setup`: network, classifier, optimizer, P x K sampler,
                    schedule, augmentation stream (freshly seeded) and the resume key
      2. resume     `resume.resume_or_retire`: this training's checkpoint into the parts, or a fresh start
      3. epochs     `EpochLoop.train_epoch`: the step (DDP-wrapped with several processes) over the prefetched
                    batches, the figures reduced over ranks, the schedule stepped
      4. save       `EpochLoop.save_checkpoint`: when `CheckpointCadence` says, the state snapshotted to host
                    memory and written in the background (rank 0)
      5. clean up   leaving `EpochLoop`: batches stopped, the last checkpoint complete on disk (also when
                    training failed)

Checkpoint cadence (`train.checkpoint_every`): every N epochs (an integer), or a duration (`5min`: read from
the clock once per epoch, measured from the last checkpoint or the start); always after the last epoch and
after a SIGTERM (training/termination.py). A checkpoint holds model, classifier (loss), optimizer,
scheduler, sampler and RNG state, the epoch, the history and the resume key (see `resume`). Resuming from
it continues the same random streams: on the CPU an interrupted run ends with bit-identical weights to an
uninterrupted one. On CUDA only up to the run-to-run noise of non-deterministic kernels, as two
uninterrupted CUDA runs differ: fit turns cudnn.benchmark on (autotuned kernels may differ per run), and
even torch.use_deterministic_algorithms(True) would also need CUBLAS_WORKSPACE_CONFIG=:4096:8 (or :16:8) in
the environment and cudnn.benchmark off.

One fast path on every device: autocast in `train.precision` (auto: bf16 on CUDA devices of compute
capability >= 8.0 and on native-bf16 CPUs, else fp32; fp16 with a GradScaler on CUDA only), channels_last
and fused Adam, the same TrainStep code on the CPU and CUDA. CUDA-only: cudnn.benchmark and, with
`train.cuda_graphs` (true, or auto: one process), the step replayed from a graph. Labels are checked once,
loss and accuracy are read once per epoch.

With several processes (see `distributed`) the model and the classifier train under
DistributedDataParallel (`train.sync_batchnorm`: SyncBatchNorm, CUDA only), each rank takes its share of
the P x K batch, epoch figures are reduced over ranks, rank 0 alone writes checkpoints and calls
`on_start`/`on_epoch`, and every rank resumes from the same checkpoint (any process count).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import FitConfig as FitConfig  # re-exported: fit's argument, defined with the params
from ..config import TrainConfig, checkpoint_cadence
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
    clock: Callable[[], float] = time.monotonic,
) -> FitResult:
    """Train on uint8 `images` (N, H, W, 3), `labels` (N,) in 0..num_classes-1 (see the module's steps).
    Rank 0 calls `on_start(resumed history)` and `on_epoch(stats)`; `clock` times a duration cadence."""
    train = config.train
    place = _placement(train, dist)  # 1. set up: the process, its device and precision
    parts, transform, key = _setup(labels, num_classes, config, place, data_fingerprint)
    history, start_epoch = resume.resume_or_retire(checkpoint_path, key, parts, place.ctx, train)  # 2. resume
    if on_start is not None and place.ctx.is_main:
        on_start(list(history))
    loop = EpochLoop(images, labels, transform, parts, place, config, checkpoint_path, key, clock, progress)
    with termination.handling(), loop:  # SIGTERM: stop after the step; 5. clean up, also on failure
        for epoch in range(start_epoch, train.epochs):
            stats = loop.train_epoch(epoch, history)  # 3. one epoch
            loop.save_checkpoint(epoch + 1, history)  # 4. when the cadence says
            if on_epoch is not None and place.ctx.is_main:
                on_epoch(stats)
            termination.stop_here(f"epoch {epoch + 1}")
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


def _setup(
    labels: np.ndarray, num_classes: int, config: FitConfig, place: Placement, data_fingerprint: str
) -> tuple[TrainingParts, TrainTransform, dict[str, Any]]:
    """The labels checked once, the augmentation, the training's parts and its resume key (configuration,
    `data_fingerprint`, training code: see `resume.resume_key`)."""
    losses.validate_labels(torch.as_tensor(np.asarray(labels), dtype=torch.int64), num_classes)
    transform, _ = build_transforms(**dataclasses.asdict(config.transform))
    parts = _build_parts(labels, num_classes, config, place)
    key = resume.resume_key(
        num_classes=num_classes,
        config=config,
        transform=transform,
        precision=place.precision,
        data_fingerprint=data_fingerprint,
    )
    return parts, transform, key


def _net_and_loss(num_classes: int, config: FitConfig, place: Placement) -> tuple[ReIDNet, nn.Module]:
    """The network and its loss, initialised in this order from the training seed."""
    seed = config.train.seed
    torch.manual_seed(seed)
    net = ReIDNet(**dataclasses.asdict(config.model))
    net = net.to(place.device, memory_format=place.memory_format)  # type: ignore[call-overload]
    loss = config.loss
    criterion = losses.build_loss(
        loss.type,
        embedding_dim=net.embedding_dim,
        num_classes=num_classes,
        scale=loss.scale,
        margin=loss.margin,
    ).to(place.device)
    criterion.check_labels = False  # type: ignore[assignment]  # validated once for the whole dataset
    return net, criterion


def _build_parts(labels: np.ndarray, num_classes: int, config: FitConfig, place: Placement) -> TrainingParts:
    """Network, classifier, optimizer, P x K sampler, schedule and augmentation stream, freshly seeded
    (the same initial weights on every rank)."""
    dev, ctx, optim, schedule = place.device, place.ctx, config.optim, config.schedule
    seed = config.train.seed
    net, criterion = _net_and_loss(num_classes, config, place)
    params = list(net.parameters()) + list(criterion.parameters())
    optimizer = build_optimizer(
        params,
        lr=optim.lr,
        weight_decay=optim.weight_decay,
        betas=(optim.betas[0], optim.betas[1]),
        eps=optim.eps,
        device=dev,
        capturable=place.graphs,
    )
    sampler = build_sampler(
        config.sampler, labels.tolist(), seed=seed, rank=ctx.rank, world_size=ctx.world_size
    )
    scheduler = build_scheduler(
        optimizer,
        base_lr=optim.lr,
        warmup_start_lr=schedule.warmup_start_lr,
        warmup_epochs=schedule.warmup_epochs,
        milestones=schedule.milestones,
        gamma=schedule.gamma,
        step_per=schedule.step_per,
        iters_per_epoch=len(sampler),
    )
    aug_rng = resume.rank_generator(seed + 1, ctx)  # rank 0: seed + 1, as a single process
    scaler = torch.amp.GradScaler(dev.type) if place.precision == "fp16" else None
    return TrainingParts(
        model=net,
        criterion=criterion,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        aug_rng=aug_rng,
        scaler=scaler,
        device=dev,
    )


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


class CheckpointCadence:
    """When the loop checkpoints (`train.checkpoint_every`): every N epochs, or once a duration has passed
    since the last checkpoint (or the start), the time read from `clock` once per epoch; always after the
    last epoch and after a SIGTERM. Under DDP the ranks agree on the time (the longest rank's), so every
    rank joins the checkpoint's collective."""

    def __init__(self, train: TrainConfig, clock: Callable[[], float], ctx: distributed.DistContext):
        self.every_epochs, self.every_seconds = checkpoint_cadence(train.checkpoint_every)
        self.epochs, self.clock, self.ctx = train.epochs, clock, ctx
        self.since = clock() if self.every_seconds else 0.0

    def due(self, epochs_done: int) -> bool:
        """Whether to checkpoint after `epochs_done` epochs (a duration: agreed over the ranks)."""
        last = epochs_done == self.epochs or termination.should_stop()
        if not self.every_seconds:
            return epochs_done % self.every_epochs == 0 or last
        now = self.clock()
        (elapsed,) = distributed.all_max([now - self.since], self.ctx)
        if elapsed < self.every_seconds and not last:
            return False
        self.since = now
        return True

    def describe(self) -> str:
        if self.every_seconds:
            return f"checkpoint every {self.every_seconds:g} s and after the last epoch"
        return f"checkpoint every {self.every_epochs} epoch(s)"


class EpochLoop:
    """The epochs of one fit over uint8 `images` (N, H, W, 3) and `labels` (N,): the step (DDP-wrapped with
    several processes), the prefetched batches, the checkpoint cadence and writer. A context manager:
    leaving it stops the batch prefetch and waits for the last checkpoint write (raising its error), so
    the last submitted checkpoint is complete on disk even when training failed."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform: TrainTransform,
        parts: TrainingParts,
        place: Placement,
        config: FitConfig,
        checkpoint_path: Path,
        key: dict[str, Any],  # the resume key every checkpoint holds
        clock: Callable[[], float],
        progress: bool,
    ):
        self.parts, self.place, self.train, self.progress = parts, place, config.train, progress
        self.cadence = CheckpointCadence(config.train, clock, place.ctx)  # the clock starts here
        self.step = _train_step(parts, place, config.train.sync_batchnorm, config.sampler.batch_size)
        self.step_per_iteration = config.schedule.step_per == "iteration"
        self.batches = TrainBatches(
            images,
            labels,
            parts.sampler,
            transform,
            parts.aug_rng,
            place.device,
            memory_format=place.memory_format,
        )
        self.checkpoint_path, self.key = checkpoint_path, key
        self.writer = checkpoint.CheckpointWriter()

    def __enter__(self) -> EpochLoop:
        place = self.place
        log.info(
            "training on %s: precision %s, CUDA graphs %s, %d epochs, %s",
            place.info,
            place.precision,
            "on" if place.graphs else "off",
            self.train.epochs,
            self.cadence.describe(),
        )
        return self

    def train_epoch(self, epoch: int, history: list[EpochStats]) -> EpochStats:
        """Train epoch `epoch` (0-based): its figures reduced over ranks (the same on every rank), the
        schedule stepped, the figures logged and appended to `history`."""
        parts, ctx = self.parts, self.place.ctx
        parts.sampler.set_epoch(epoch)
        stats = train_one_epoch(
            step=self.step,
            scheduler=parts.scheduler,
            batches=self.batches.epoch(epoch),
            epoch=epoch,
            step_per_iteration=self.step_per_iteration,
            progress=self.progress and ctx.is_main,
        )
        stats = distributed.reduce_epoch_stats(stats, ctx)
        if not self.step_per_iteration:
            parts.scheduler.step()
        history.append(stats)
        _log_epoch(stats, self.train.epochs, self.place)
        return stats

    def save_checkpoint(self, epochs_done: int, history: list[EpochStats]) -> None:
        """When the cadence says: the training state after `epochs_done` epochs (every rank's augmentation
        stream gathered: every rank calls this) snapshotted and written in the background by rank 0."""
        if not self.cadence.due(epochs_done):
            return
        state = resume.training_state(epochs_done, self.parts, history, self.key, self.place.ctx)
        if self.place.ctx.is_main:
            self.writer.submit_snapshot(state, self.checkpoint_path)

    def __exit__(self, *exc: object) -> None:
        try:
            self.batches.close()
        finally:
            self.writer.close()


def _log_epoch(stats: EpochStats, epochs: int, place: Placement) -> None:
    log.info(
        "epoch %d/%d loss %.4f acc %.3f lr %.2e (%.0f img/s, %s %s%s)",
        stats.epoch + 1,
        epochs,
        stats.loss,
        stats.accuracy,
        stats.lr,
        stats.images_per_second,
        place.device.type,
        place.precision,
        ", graphs" if place.graphs else "",
    )
