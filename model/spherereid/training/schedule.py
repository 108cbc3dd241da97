"""Learning-rate schedule: linear warm-up, then step decay (the paper's warming-up schedule).

Paper numbers: 5e-5 -> 1e-3 linearly over 20 epochs, x0.1 at epochs 80 and 100, 140 epochs.
`lr_at` is the closed form; `build_scheduler` wraps it in a LambdaLR stepping per epoch or per
iteration whose state_dict holds only plain numbers (loadable with torch.load(weights_only=True)).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

STEP_PER = ("epoch", "iteration")


def lr_at(
    epoch: float,
    base_lr: float,
    warmup_start_lr: float,
    warmup_epochs: int,
    milestones: Sequence[int],
    gamma: float,
) -> float:
    """Learning rate at (possibly fractional) `epoch`.

    epoch < warmup_epochs: warmup_start_lr + (base_lr - warmup_start_lr) * epoch / warmup_epochs;
    afterwards base_lr * gamma ** (number of milestones <= epoch).
    """
    if epoch < warmup_epochs:
        return warmup_start_lr + (base_lr - warmup_start_lr) * epoch / warmup_epochs
    return base_lr * gamma ** bisect.bisect_right(sorted(milestones), epoch)


class LrFactor:
    """LambdaLR multiplier: step -> lr_at(step / iters_per_epoch) / base_lr.

    A class rather than a lambda so LambdaLR.state_dict() stores its attributes (plain numbers).
    """

    def __init__(
        self,
        *,
        base_lr: float,
        warmup_start_lr: float,
        warmup_epochs: int,
        milestones: Sequence[int],
        gamma: float,
        iters_per_epoch: int = 1,
    ):
        self.base_lr = float(base_lr)
        self.warmup_start_lr = float(warmup_start_lr)
        self.warmup_epochs = int(warmup_epochs)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.iters_per_epoch = int(iters_per_epoch)

    def __call__(self, step: int) -> float:
        epoch = step / self.iters_per_epoch
        lr = lr_at(epoch, self.base_lr, self.warmup_start_lr, self.warmup_epochs, self.milestones, self.gamma)
        return lr / self.base_lr


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    base_lr: float,
    warmup_start_lr: float,
    warmup_epochs: int,
    milestones: Sequence[int],
    gamma: float,
    step_per: str = "epoch",
    iters_per_epoch: int = 1,
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR following `lr_at`; call .step() once per epoch or once per iteration (`step_per`).

    Each param group's lr is its initial lr times lr_at(t) / base_lr, so a group built with
    lr=base_lr follows lr_at exactly; after construction the lr is already lr_at(0).
    """
    if step_per not in STEP_PER:
        raise ValueError(f"step_per must be epoch|iteration, got '{step_per}'; check schedule.step_per")
    if base_lr <= 0 or warmup_start_lr <= 0:
        raise ValueError(f"base_lr and warmup_start_lr must be > 0, got {base_lr}, {warmup_start_lr}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    if step_per == "iteration" and iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch} (an epoch with no batches?)")
    factor = LrFactor(
        base_lr=base_lr,
        warmup_start_lr=warmup_start_lr,
        warmup_epochs=warmup_epochs,
        milestones=milestones,
        gamma=gamma,
        iters_per_epoch=iters_per_epoch if step_per == "iteration" else 1,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)
