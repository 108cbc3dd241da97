"""The training step: TrainStep (eager or replayed from a CUDA graph) and its device-side epoch statistics
(EpochAccumulator, read once per epoch into EpochStats)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..device import AUTOCAST_DTYPES

log = logging.getLogger(__name__)


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


class EpochAccumulator:
    """Device-side sums over an epoch's steps, read once at its end (no host sync per step).

    loss_sum (float64): sum of loss * batch size; correct (int64): top-1 hits; steps (int64): steps
    taken; first_bad (int64): index of the first step whose loss was not finite, -1 when none. Updates
    are in-place tensor ops, so they can be captured in a CUDA graph. With several processes, all-reduce
    `loss_sum`, `correct` (sum) and `first_bad` (max) before `read`.
    """

    def __init__(self, device: torch.device):
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.steps = torch.zeros((), dtype=torch.int64, device=device)
        self.first_bad = torch.full((), -1, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.steps.zero_()
        self.first_bad.fill_(-1)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One step's scalar `loss`, `logits` (B, C) and `labels` (B,)."""
        loss = loss.detach()
        self.loss_sum.add_(loss.double() * labels.shape[0])
        self.correct.add_((logits.detach().argmax(dim=1) == labels).sum())
        new_bad = (~torch.isfinite(loss)) & (self.first_bad < 0)
        self.first_bad.copy_(torch.where(new_bad, self.steps, self.first_bad))
        self.steps.add_(1)

    def read(self) -> tuple[float, int, int]:
        """(loss_sum, correct, first_bad) as Python numbers: the epoch's one host sync."""
        values = torch.stack([self.loss_sum, self.correct.double(), self.first_bad.double()]).tolist()
        return values[0], int(values[1]), int(values[2])


class TrainStep:
    """One optimisation step on a batch: forward under autocast, loss (float32), backward, optimizer step,
    and the device-side stats; eager, or replayed from a CUDA graph.

    With `cuda_graphs`, the first `warmup` calls run eagerly on a side stream (as torch requires before a
    capture; they are real training steps), the next call captures forward + backward + optimizer step +
    stats into one graph and replays it, and later calls copy the batch into the graph's static inputs and
    replay. The optimizer must be capturable with a tensor learning rate (see `build_optimizer`) so that
    scheduler changes reach the graph. `model` may be a DistributedDataParallel wrapper.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: torch.optim.Optimizer,
        stats: EpochAccumulator,
        precision: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        cuda_graphs: bool = False,
        warmup: int = 3,
    ):
        self.model, self.criterion, self.optimizer, self.stats = model, criterion, optimizer, stats
        self.dtype = AUTOCAST_DTYPES[precision]
        self.scaler = scaler
        if cuda_graphs and scaler is not None:
            raise ValueError("CUDA graphs cannot capture the fp16 GradScaler; use precision bf16 or fp32")
        self.cuda_graphs, self.warmup = cuda_graphs, warmup
        # a loss on the head's output before the L2 normalisation (softmax) gets it from the network
        self.features_before_l2 = takes_features_before_l2(criterion)
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: tuple[torch.Tensor, torch.Tensor] | None = None

    def _forward_backward(self, images: torch.Tensor, labels: torch.Tensor, zero_grad: bool) -> None:
        # no autocast weight-cast cache under graph capture: the graph must not point at freed casts
        with torch.autocast(
            device_type=images.device.type,
            dtype=self.dtype,
            enabled=self.dtype is not None,
            cache_enabled=not self.cuda_graphs,
        ):
            if self.features_before_l2:
                embeddings = self.model(images, normalise=False)
            else:
                embeddings = self.model(images)
            loss, logits = self.criterion(embeddings, labels)
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.stats.add(loss, logits, labels)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Images (B, 3, H, W) and int64 labels (B,) on the training device."""
        self.calls += 1
        if not self.cuda_graphs:
            self._forward_backward(images, labels, zero_grad=True)
        elif self.graph is not None and self.static is not None:
            static_images, static_labels = self.static
            if images.shape != static_images.shape or labels.shape != static_labels.shape:
                raise ValueError(
                    f"CUDA graphs replay one batch shape: captured {tuple(static_images.shape)}, got "
                    f"{tuple(images.shape)}; every batch must be sampler.p x sampler.k (or set "
                    "train.cuda_graphs false)"
                )
            static_images.copy_(images, non_blocking=True)
            static_labels.copy_(labels, non_blocking=True)
            self.graph.replay()
        elif self.calls <= self.warmup:
            side = torch.cuda.Stream(images.device)
            side.wait_stream(torch.cuda.current_stream(images.device))
            with torch.cuda.stream(side):
                self._forward_backward(images, labels, zero_grad=True)
            torch.cuda.current_stream(images.device).wait_stream(side)
        else:
            self._capture(images, labels)

    def _capture(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.static = (images.clone(), labels.clone())
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward allocates .grad in its own pool
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the batch-gathering thread keeps pinning memory and waiting on copy events meanwhile
        with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self._forward_backward(*self.static, zero_grad=False)
        before = int(self.stats.steps.item())  # one host read per training, at capture
        self.graph.replay()  # capturing records the kernels without running them
        check_replay_advanced(before, int(self.stats.steps.item()), images.device)
        log.info("captured the training step in a CUDA graph after %d eager steps", self.calls - 1)


def takes_features_before_l2(criterion: nn.Module) -> bool:
    """Whether `criterion` (or the module a DDP wrapper holds) is trained on the head's output before the L2
    normalisation (`features_before_l2`, the softmax baseline's classifier); the Sphere Softmax is not."""
    inner = getattr(criterion, "module", criterion)
    return bool(getattr(inner, "features_before_l2", False))


class GraphCaptureError(RuntimeError):
    """A CUDA graph of the training step did no work on replay."""


def check_replay_advanced(before: int, after: int, device: torch.device) -> None:
    """The step counter must advance by one over the first replay of the captured graph. A capture on
    another device's stream (train.device cuda:N while the current CUDA device is another) runs the step
    eagerly, records nothing, and every replay would silently train nothing: GraphCaptureError."""
    if after != before + 1:
        raise GraphCaptureError(
            f"the CUDA graph of the training step did no work on replay on {device} (step counter "
            f"{before} -> {after}): the capture recorded nothing. Is {device} the current CUDA device "
            "(torch.cuda.set_device before any CUDA work)? Set train.cuda_graphs false to train eagerly"
        )


DDP_GRAPHS_MESSAGE = (
    "train.cuda_graphs is true but training runs in {world} processes: the step is not captured under "
    "DistributedDataParallel. Choose: set train.cuda_graphs auto (off under DDP) or false for this multi-GPU "
    "run (eager DDP), or train in one process (one GPU) to keep the graph"
)


def resolve_cuda_graphs(setting: bool | str, device: torch.device, world_size: int, precision: str) -> bool:
    """Whether the step is replayed from a CUDA graph, for train.cuda_graphs `setting` (true | false | auto)
    and the train.precision setting: never off CUDA; `auto` is on for a single process and off (one log line
    saying why) under DDP or fp16; `true` under DDP is a ValueError naming the choices. Not captured under
    DDP, by choice: a graph of DDP's bucketed all-reduce needs static_graph DDP and capture-safe NCCL, a path
    nobody can test without several GPUs; a clear choice beats an untested one."""
    if device.type != "cuda" or setting is False:
        return False
    if world_size > 1:
        if setting is True:
            raise ValueError(DDP_GRAPHS_MESSAGE.format(world=world_size))
        log.info(
            "train.cuda_graphs auto: off, %d processes train under DDP (its all-reduce runs eagerly)",
            world_size,
        )
        return False
    if precision == "fp16":  # `true` with fp16 is refused by TrainConfig
        log.info("train.cuda_graphs auto: off, fp16's GradScaler cannot be captured (use bf16 or fp32)")
        return False
    return True
