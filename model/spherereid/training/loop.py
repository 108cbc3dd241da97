"""One training epoch: the step over every batch, the per-iteration schedule, one host read at the end."""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch

from ..progress import tqdm
from . import termination
from .optim import current_lr
from .step import EpochStats, TrainStep


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


def train_one_epoch(
    *,
    step: TrainStep,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epoch: int,
    step_per_iteration: bool = False,
    progress: bool = True,
) -> EpochStats:
    """Train for one pass over `batches` of (images (B, 3, H, W), labels (B,)) with `step`.

    The scheduler steps every iteration when `step_per_iteration`, otherwise the caller steps it once per
    epoch. Loss and accuracy are summed on the device and read once at the end; a non-finite loss at any
    step raises NonFiniteLossError then (naming the epoch and the step), and the caller discards the
    epoch (its weights are not checkpointed).
    """
    step.model.train()
    step.criterion.train()
    step.stats.reset()
    lr = current_lr(step.optimizer)
    seen = steps = 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=None if progress else True, leave=False)
    for images, labels in bar:
        step(images, labels)
        if scheduler is not None and step_per_iteration:
            scheduler.step()
        seen += labels.shape[0]
        steps += 1
        termination.stop_here(f"epoch {epoch + 1}, step {steps} (the epoch is discarded)")
    if seen == 0:
        raise ValueError("the epoch had no batches: too few identities for sampler.p")
    loss_sum, correct, first_bad = step.stats.read()
    seconds = time.perf_counter() - start
    bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    if first_bad >= 0:
        raise NonFiniteLossError(
            f"loss became non-finite at epoch {epoch}, step {first_bad} (of steps 0..{steps - 1}); the epoch "
            "is discarded and the last good checkpoint kept: lower optim.lr or check the data"
        )
    return EpochStats(
        epoch=epoch, loss=loss_sum / seen, accuracy=correct / seen, lr=lr, images=seen, seconds=seconds
    )
