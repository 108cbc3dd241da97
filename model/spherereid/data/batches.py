"""Training batches from a prepared split: gather uint8 images from the memmap, augment on the device.

The next batch's images are gathered in a background thread while the model works on the current
one (numpy releases the GIL while copying), so the input pipeline costs little next to the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .transforms import TrainTransform


class TrainBatches:
    """Iterable of (images float32 (B, 3, h, w), labels int64 (B,)) for one epoch.

    `batch_sampler` yields lists of row indices (e.g. BalancedIdentitySampler); `generator` drives the
    augmentation and is advanced deterministically, batch by batch.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_sampler: Iterable[list[int]],
        transform: TrainTransform,
        generator: torch.Generator,
        device: torch.device,
        prefetch: bool = True,
    ):
        self.images, self.labels = images, torch.as_tensor(labels, dtype=torch.int64)
        self.batch_sampler, self.transform = batch_sampler, transform
        self.generator, self.device, self.prefetch = generator, device, prefetch

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def _gather(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        raw = torch.from_numpy(np.ascontiguousarray(self.images[idx]))
        return raw, self.labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = iter(self.batch_sampler)
        if not self.prefetch:
            for indices in batches:
                yield self._finish(*self._gather(indices))
            return
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            first = next(batches, None)
            if first is not None:
                pending = pool.submit(self._gather, first)
            while pending is not None:
                raw, labels = pending.result()
                following = next(batches, None)
                pending = pool.submit(self._gather, following) if following is not None else None
                yield self._finish(raw, labels)

    def _finish(self, raw: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = raw.to(self.device, non_blocking=True)
        return self.transform(raw, self.generator), labels.to(self.device, non_blocking=True)
