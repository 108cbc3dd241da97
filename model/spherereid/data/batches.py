"""Batches for training and extraction: gather uint8 images from the memmap ahead of use, copy to the device.

Gathering runs in a background thread (numpy releases the GIL while copying) into a ring of host buffers,
pinned on CUDA so the host-to-device copy is asynchronous; a buffer is refilled only after the copy that
read it has finished. Training batches are gathered across epoch boundaries (the first batches of the
next epoch while the last of this one trains). Augmentation runs in the consuming thread, in order, so
its random stream does not depend on the prefetching.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .transforms import TrainTransform


class HostSlots:
    """A ring of `count` uint8 host buffers of shape `shape`, pinned when `device` is CUDA."""

    def __init__(self, count: int, shape: tuple[int, ...], device: torch.device):
        pin = device.type == "cuda"
        self.device = device
        self.buffers = [torch.empty(shape, dtype=torch.uint8, pin_memory=pin) for _ in range(count)]
        self.events: list[torch.cuda.Event | None] = [None] * count
        self.copy_stream: torch.cuda.Stream | None = None  # CUDA: host-to-device copies on a side stream

    def fill(self, slot: int, images: np.ndarray, rows: np.ndarray | slice) -> torch.Tensor:
        """Copy images[rows] into buffer `slot` (after its previous device copy finished); its view."""
        event = self.events[slot]
        if event is not None:
            event.synchronize()
        if isinstance(rows, slice):
            part = images[rows]
            out = self.buffers[slot][: len(part)]
            out.numpy()[...] = part
        else:
            out = self.buffers[slot][: len(rows)]
            np.take(images, rows, axis=0, out=out.numpy(), mode="clip")  # rows are valid; clip: unbuffered
        return out

    def to_device(self, slot: int, host: torch.Tensor) -> torch.Tensor:
        """`host` (a view of buffer `slot`) on the device; on the CPU a copy, so the buffer is free again.
        On CUDA the copy runs on a side stream; the current stream waits for it before using the batch."""
        if self.device.type != "cuda":
            return host.clone()
        main = torch.cuda.current_stream(self.device)
        if self.copy_stream is None:
            self.copy_stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self.copy_stream):  # the copy overlaps the step running on `main`
            out = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        main.wait_stream(self.copy_stream)  # the step's kernels start after the copy
        out.record_stream(main)  # allocated on the side stream, used and freed on `main`
        self.events[slot] = event  # the host buffer is refilled only after this copy
        return out


_END = object()


class EpochBatches:
    """One epoch's batches: an iterator with a length (for progress bars)."""

    def __init__(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], length: int):
        self._batches, self._length = batches, length

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self._batches


class TrainBatches:
    """(images float32 (B, 3, h, w), labels int64 (B,)) training batches, epoch after epoch.

    `batch_sampler` yields lists of row indices (e.g. BalancedIdentitySampler, which has `set_epoch`);
    `generator` drives the augmentation and is advanced deterministically, batch by batch, in the
    consuming thread. Iterate `epoch(e)` for consecutive epochs (the gathering thread runs `depth` batches
    ahead, into the next epoch), or the object itself for one epoch at the sampler's current state. Call
    `close()` (or use it as a context manager) to stop the gathering thread.
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
        memory_format: torch.memory_format = torch.contiguous_format,
        depth: int = 2,
    ):
        self.images, self.labels = images, torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        self.batch_sampler, self.transform = batch_sampler, transform
        self.generator, self.device, self.prefetch = generator, torch.device(device), prefetch
        self.memory_format, self.depth = memory_format, depth
        self._slots: HostSlots | None = None
        self._worker: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._next_epoch: int | None = None

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def __enter__(self) -> TrainBatches:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = getattr(self.batch_sampler, "epoch", None)
        if epoch is None or not self.prefetch:
            yield from self._plain(self.batch_sampler)
            return
        yield from self._epoch(int(epoch))

    def _plain(self, indices_iter: Iterable[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for indices in indices_iter:
            idx = np.asarray(indices, dtype=np.int64)
            raw = torch.from_numpy(np.ascontiguousarray(self.images[idx])).to(self.device, non_blocking=True)
            yield self._finish(raw, self.labels[idx].to(self.device, non_blocking=True))

    def _finish(self, raw: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(raw, self.generator, memory_format=self.memory_format), labels

    def epoch(self, epoch: int) -> EpochBatches:
        """The batches of `epoch` (sized, iterate once); when it follows the previous call's epoch, its
        first batches are already gathered."""
        return EpochBatches(self._epoch(epoch), len(self))

    def _epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.prefetch:
            yield from self._plain(self._sampler_for(epoch))
            return
        if self._next_epoch != epoch:
            self.close()
            self._start(epoch)
        self._next_epoch = epoch + 1
        assert self._queue is not None and self._slots is not None
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                self._next_epoch = None
                raise item
            slot, host, labels = item
            raw = self._slots.to_device(slot, host)
            yield self._finish(raw, labels.to(self.device, non_blocking=True))

    def _sampler_for(self, epoch: int) -> Iterable[list[int]]:
        if not hasattr(self.batch_sampler, "set_epoch"):
            return self.batch_sampler
        sampler = copy.copy(self.batch_sampler)  # the caller's sampler is not touched from the thread
        sampler.set_epoch(epoch)
        return sampler

    def _start(self, epoch: int) -> None:
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.depth)
        if self._slots is None:
            first = next(iter(self._sampler_for(epoch)), [])
            shape = (max(len(first), 1), *self.images.shape[1:])
            self._slots = HostSlots(self.depth + 3, shape, self.device)
        self._worker = threading.Thread(
            target=self._gather_loop, args=(epoch, self._stop, self._queue), daemon=True, name="batches"
        )
        self._worker.start()

    def _put(self, item: object, stop: threading.Event, q: queue.Queue) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _gather_loop(self, epoch: int, stop: threading.Event, q: queue.Queue) -> None:
        assert self._slots is not None
        pin = self.device.type == "cuda"
        n = 0
        try:
            while not stop.is_set():
                for indices in self._sampler_for(epoch):
                    rows = np.asarray(indices, dtype=np.int64)
                    if rows.size and (rows.min() < 0 or rows.max() >= len(self.images)):
                        raise IndexError(
                            f"batch sampler gave row {int(rows.max() if rows.max() >= 0 else rows.min())} "
                            f"outside 0..{len(self.images) - 1}: the labels and images do not match"
                        )
                    slot = n % len(self._slots.buffers)
                    host = self._slots.fill(slot, self.images, rows)
                    labels = self.labels[rows]
                    if not self._put((slot, host, labels.pin_memory() if pin else labels), stop, q):
                        return
                    n += 1
                if not self._put(_END, stop, q):
                    return
                epoch += 1
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, raised there
            self._put(exc, stop, q)

    def close(self) -> None:
        """Stop the gathering thread (waits for it)."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join()
        self._worker, self._queue, self._next_epoch = None, None, None


def device_slices(images: np.ndarray, batch_size: int, device: torch.device | str) -> Iterator[torch.Tensor]:
    """Consecutive uint8 batches images[i : i + batch_size] (B, H, W, 3) on `device`, the next one
    gathered in a background thread (into pinned memory on CUDA) while the current one is used."""
    device = torch.device(device)
    starts = list(range(0, len(images), batch_size))
    if not starts:
        return
    slots = HostSlots(3, (min(batch_size, len(images)), *images.shape[1:]), device)
    with ThreadPoolExecutor(max_workers=1) as pool:

        def gather(i: int):
            return pool.submit(slots.fill, i % 3, images, slice(starts[i], starts[i] + batch_size))

        pending = gather(0)
        for i in range(len(starts)):
            host = pending.result()
            out = slots.to_device(i % 3, host)
            if i + 1 < len(starts):
                pending = gather(i + 1)
            yield out
