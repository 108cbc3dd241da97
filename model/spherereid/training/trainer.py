"""Fit a ReID network with checkpoints after every epoch and exact resume.

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
from ..modeling.losses import build_loss
from ..modeling.net import ReIDNet
from . import checkpoint
from .loop import EpochStats, resolve_device, train_one_epoch
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
    amp: bool = False,
    on_epoch: Callable[[EpochStats], None] | None = None,
    progress: bool = True,
) -> FitResult:
    """Train on uint8 `images` (N, H, W, 3) with `labels` (N,) in 0..num_classes-1.

    Resumes from `checkpoint_path` when it exists and was written with the same configuration,
    `data_fingerprint` and training code (`epochs` may grow); otherwise starts fresh. Calls
    `on_epoch` after each epoch's checkpoint.
    """
    dev = resolve_device(device)
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
            "amp": amp,
            "data": data_fingerprint,
            "code": code_fingerprint(),
        }
    )  # lists, not tuples: compares equal to the copy read back from a checkpoint
    torch.manual_seed(seed)
    model = ReIDNet(**model_kwargs).to(dev)
    criterion = build_loss(
        loss_kwargs["type"],
        embedding_dim=model.embedding_dim,
        num_classes=num_classes,
        scale=loss_kwargs["scale"],
        margin=loss_kwargs["margin"],
    ).to(dev)
    params = list(model.parameters()) + list(criterion.parameters())
    optimizer = torch.optim.Adam(
        params,
        lr=optim_kwargs["lr"],
        weight_decay=optim_kwargs["weight_decay"],
        betas=tuple(optim_kwargs["betas"]),
    )
    sampler = BalancedIdentitySampler(
        labels.tolist(), p=sampler_kwargs["p"], k=sampler_kwargs["k"], seed=seed
    )
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
    aug_rng = torch.Generator().manual_seed(seed + 1)
    scaler = torch.amp.GradScaler(dev.type) if amp and dev.type == "cuda" else None
    history: list[EpochStats] = []
    start_epoch = 0

    if checkpoint_path.is_file():
        state = checkpoint.load(checkpoint_path, map_location=dev)
        if state.get("format") == CHECKPOINT_FORMAT and state.get("config") == config:
            model.load_state_dict(state["model"])
            criterion.load_state_dict(state["criterion"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler.load_state_dict(state["sampler"])
            aug_rng.set_state(state["aug_rng"])
            torch.set_rng_state(state["torch_rng"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            history = [EpochStats(**h) for h in state["history"]]
            start_epoch = int(state["epoch"])
            log.info("resuming from %s after epoch %d", checkpoint_path, start_epoch)
        else:
            stale = checkpoint_path.with_name(checkpoint_path.name + ".stale")
            checkpoint_path.replace(stale)
            log.warning(
                "%s was written with another configuration; moved to %s, starting fresh",
                checkpoint_path,
                stale,
            )

    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        batches = TrainBatches(images, labels, sampler, transform, aug_rng, dev)
        stats = train_one_epoch(
            model=model,
            criterion=criterion,
            optimizer=optimizer,
            scheduler=scheduler,
            batches=batches,
            epoch=epoch,
            step_per_iteration=step_per_iteration,
            scaler=scaler,
            progress=progress,
        )
        if not step_per_iteration:
            scheduler.step()
        history.append(stats)
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": epoch + 1,
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
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        checkpoint.save_atomic(state, checkpoint_path)
        log.info(
            "epoch %d/%d loss %.4f acc %.3f lr %.2e (%.0f img/s)",
            epoch + 1,
            epochs,
            stats.loss,
            stats.accuracy,
            stats.lr,
            stats.images_per_second,
        )
        if on_epoch is not None:
            on_epoch(stats)
    return FitResult(model=model, criterion=criterion, history=history, resumed_from_epoch=start_epoch)


def _plain(value: Any) -> Any:
    """Tuples -> lists recursively, so a config compares equal after a checkpoint round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
