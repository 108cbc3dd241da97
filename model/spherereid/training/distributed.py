"""Several training processes: the process group from torchrun's environment, rank helpers, reductions.

torchrun (or a Kubeflow Trainer TrainJob, which runs torchrun) sets RANK, WORLD_SIZE and LOCAL_RANK for
each process. `setup()` reads them: with WORLD_SIZE > 1 it joins the process group (NCCL on CUDA, gloo on
the CPU) with a timeout, so a rank that died or hangs makes the others fail instead of waiting forever;
without them (or with one process) nothing is initialised and training stays a plain single process.

Every collective here is called by all ranks in the same order; `RankAccumulator` is how one rank's NaN
loss stops every rank with the same message.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..contracts import DIST_TIMEOUT_ENV as TIMEOUT_ENV
from ..device import activate_device, resolve_device
from .step import EpochAccumulator, EpochStats

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0


class DistributedError(RuntimeError):
    """The process group cannot be set up or another rank failed; the message names the fix."""


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank of world_size, its device, the backend ('' when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str = ""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, MLflow metrics and the model."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"environment variable {name}={value!r} is not an integer") from None


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) outside torchrun."""
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)


def device_for(name: str, local_rank: int, world_size: int) -> torch.device:
    """The training device of this process: `resolve_device(name)` (which honours SPHEREREID_REQUIRE_CUDA and
    names why CUDA is unusable); with several processes a CUDA device becomes cuda:<local rank>, and an
    explicit 'cuda:N' is refused."""
    device = resolve_device(name)
    if world_size <= 1 or device.type != "cuda":
        return device
    if device.index is not None:
        raise DistributedError(
            f"train.device '{name}' names one GPU but {world_size} processes train: use auto or cuda "
            "(each process takes the GPU of its LOCAL_RANK)"
        )
    if local_rank >= torch.cuda.device_count():
        raise DistributedError(
            f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPUs: "
            "start at most one process per GPU (--nproc-per-node)"
        )
    return torch.device("cuda", local_rank)


def setup(device: str = "auto", timeout_s: float | None = None) -> DistContext:
    """Join the process group when torchrun started several processes; otherwise a single-process context.

    The timeout (default SPHEREREID_DIST_TIMEOUT_S or 600 s) bounds every collective. Called again while
    the group exists, it returns this process's context without joining twice."""
    rank, world_size, local_rank = env_world()
    dev = activate_device(device_for(device, local_rank, world_size))  # before any CUDA work, one GPU too
    if world_size <= 1:
        return DistContext(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = timedelta(seconds=timeout_s or float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend, timeout=timeout, rank=rank, world_size=world_size)
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(
                f"rank {rank}/{world_size}: cannot join the {backend} process group ({exc}); start the "
                "processes with torchrun, which sets MASTER_ADDR and MASTER_PORT"
            ) from None
        log.info("rank %d of %d on %s (%s)", rank, world_size, dev, backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev, backend=backend)


def teardown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device: str = "auto", timeout_s: float | None = None) -> Iterator[DistContext]:
    """`setup()` ... `teardown()` around a block."""
    ctx = setup(device, timeout_s)
    try:
        yield ctx
    finally:
        teardown(ctx)


def wrap(
    module: nn.Module, ctx: DistContext, sync_batchnorm: bool = False, per_rank_batch: int | None = None
) -> nn.Module:
    """DistributedDataParallel around `module` (gradients averaged over ranks); unchanged for one process.

    `sync_batchnorm` converts BatchNorm layers to SyncBatchNorm (CUDA only: statistics over the global
    batch), with a warning naming its cost; `per_rank_batch` (images per rank and step) goes in it."""
    if not ctx.distributed:
        return module
    if sync_batchnorm:
        if ctx.device.type != "cuda":
            raise DistributedError("train.sync_batchnorm needs CUDA devices; set it to false on the CPU")
        if ctx.is_main:
            log.warning(
                "train.sync_batchnorm: SyncBatchNorm all-reduces each BatchNorm layer's statistics in every "
                "forward (one collective per layer per step, %d ranks): slower than plain BatchNorm, which "
                "would normalise over each rank's own %s images per step",
                ctx.world_size,
                per_rank_batch if per_rank_batch is not None else "share of the",
            )
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def _all_reduce(values: Sequence[float], ctx: DistContext, op: dist.ReduceOp.RedOpType) -> list[float]:
    """Element-wise `op` of `values` over all ranks (float64); the values themselves for one process."""
    if not ctx.distributed:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if ctx.backend == "nccl":
        t = t.to(ctx.device)
    dist.all_reduce(t, op=op)
    return t.cpu().tolist()


def all_sum(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64)."""
    return _all_reduce(values, ctx, dist.ReduceOp.SUM)


def all_max(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Element-wise maximum of `values` over all ranks (float64)."""
    return _all_reduce(values, ctx, dist.ReduceOp.MAX)


def all_gather(obj: Any, ctx: DistContext) -> list[Any]:
    """`obj` from every rank, in rank order (picklable objects; [obj] for one process)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (bounded by the process group's timeout)."""
    if ctx.distributed:
        dist.barrier()


class RankAccumulator(EpochAccumulator):
    """An EpochAccumulator whose `read()` agrees over all ranks on the first non-finite step, so every rank
    raises the same NonFiniteLossError at the epoch's end instead of one rank leaving the others waiting.
    Loss and accuracy stay this rank's own (see `reduce_epoch_stats`)."""

    def __init__(self, device: torch.device, ctx: DistContext):
        super().__init__(device)
        self.ctx = ctx

    def read(self) -> tuple[float, int, int]:
        loss_sum, correct, first_bad = super().read()
        if self.ctx.distributed:
            never = float(2**53)
            (agreed,) = [-m for m in all_max([-(first_bad if first_bad >= 0 else never)], self.ctx)]
            first_bad = -1 if agreed >= never else int(agreed)
        return loss_sum, correct, first_bad


def reduce_epoch_stats(stats: EpochStats, ctx: DistContext) -> EpochStats:
    """The epoch over all ranks: image-weighted mean loss and accuracy, total images, the slowest rank's
    time (so images/s is the job's throughput). The same on every rank."""
    if not ctx.distributed:
        return stats
    loss_sum, correct, images = all_sum(
        [stats.loss * stats.images, stats.accuracy * stats.images, stats.images], ctx
    )
    (seconds,) = all_max([stats.seconds], ctx)
    n = int(round(images))
    return dataclasses.replace(
        stats, loss=loss_sum / n, accuracy=round(correct) / n, images=n, seconds=seconds
    )


def is_peer_failure(exc: BaseException) -> bool:
    """True for the errors a collective raises when another rank died or timed out."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        key in text
        for key in ("connection closed by peer", "connection reset", "timed out", "broken pipe", "gloo")
    )


@contextmanager
def explain_peer_failure(ctx: DistContext) -> Iterator[None]:
    """Around a training: with several processes, an error raised because another rank died or timed out
    becomes a DistributedError saying so (that rank's own error is in its log); anything else passes."""
    try:
        yield
    except Exception as exc:
        if ctx.distributed and is_peer_failure(exc):
            raise DistributedError(
                f"rank {ctx.rank} of {ctx.world_size} stopped: another training process failed or died "
                f"({' '.join(str(exc).split())[:200]}); its own error is above"
            ) from None
        raise
