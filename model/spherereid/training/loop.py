"""The loops: one training epoch, and batched feature extraction."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..data.transforms import EvalTransform

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; otherwise torch.device(name)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device is '{name}' but no CUDA device is available; use auto or cpu")
    return device


@dataclass(frozen=True)
class EpochStats:
    """Per-epoch figures: mean loss, top-1 training accuracy, learning rate at the epoch's start."""

    epoch: int
    loss: float
    accuracy: float
    lr: float
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def train_one_epoch(
    *,
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    epoch: int,
    step_per_iteration: bool = False,
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = True,
) -> EpochStats:
    """Train for one pass over `batches` of (images (B, 3, H, W), labels (B,)).

    `criterion(embeddings, labels)` returns (loss, logits). The scheduler steps every iteration when
    `step_per_iteration`, otherwise the caller steps it once per epoch. Raises NonFiniteLossError on a
    NaN/inf loss before the optimizer applies it.
    """
    model.train()
    criterion.train()
    lr = optimizer.param_groups[0]["lr"]
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", disable=None if progress else True, leave=False)
    for step, (images, labels) in enumerate(bar):
        use_amp = scaler is not None
        with torch.autocast(device_type=images.device.type, enabled=use_amp):
            embeddings = model(images)
            loss, logits = criterion(embeddings, labels)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(
                f"loss became {loss_value} at epoch {epoch}, step {step}; lower optim.lr or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None and step_per_iteration:
            scheduler.step()
        n = labels.shape[0]
        total_loss += loss_value * n
        correct += int((logits.argmax(dim=1) == labels).sum())
        seen += n
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    if seen == 0:
        raise ValueError("the epoch had no batches: too few identities for sampler.p")
    return EpochStats(
        epoch=epoch,
        loss=total_loss / seen,
        accuracy=correct / seen,
        lr=lr,
        images=seen,
        seconds=time.perf_counter() - start,
    )


@torch.inference_mode()
def extract_features(
    model: nn.Module,
    images: np.ndarray,
    transform: EvalTransform,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    flip: bool = True,
    progress: bool = True,
    desc: str = "features",
) -> np.ndarray:
    """Embed uint8 images (N, H, W, 3) -> float32 (N, D), L2-normalised.

    With `flip`, the embeddings of each image and its mirror are summed before normalising.
    """
    model.eval()
    device = torch.device(device)
    chunks: list[np.ndarray] = []
    starts = range(0, len(images), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=None if progress else True, leave=False):
        # np.array copies: the prepared memmap is read-only and torch wants writable memory
        raw = torch.from_numpy(np.array(images[start : start + batch_size])).to(device)
        x = transform(raw)
        emb = model(x).float()
        if flip:
            emb = emb + model(x.flip(-1)).float()
        chunks.append(F.normalize(emb, dim=1).cpu().numpy())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)
