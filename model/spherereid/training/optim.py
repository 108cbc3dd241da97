"""The optimizer: Adam built for the device (fused everywhere, graph-capturable on CUDA) and restored from a
checkpoint without losing that implementation or its parameters' layouts.
The learning-rate schedule is in `schedule`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    device: torch.device,
    eps: float = 1e-8,
    capturable: bool = False,
) -> torch.optim.Adam:
    """Adam with `betas` and `eps` as given (the paper's: (0.9, 0.99) and 1e-8) and coupled L2 weight decay,
    fused (one kernel for all parameters) on CUDA and on the CPU alike; `capturable` (CUDA graphs, CUDA
    only) also makes the learning rate a device tensor that the scheduler updates in place."""
    capturable = capturable and device.type == "cuda"
    optimizer = torch.optim.Adam(
        params,
        lr=torch.tensor(lr, dtype=torch.float32, device=device) if capturable else lr,
        weight_decay=weight_decay,
        betas=betas,
        eps=eps,
        fused=True,
        capturable=capturable,
    )
    for group in optimizer.param_groups:
        group["initial_lr"] = float(lr)  # schedulers compute in Python floats: no device read per step
    return optimizer


IMPLEMENTATION_KEYS = ("fused", "capturable", "foreach")


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, saved: dict[str, Any], device: torch.device
) -> None:
    """Load `saved` (an optimizer state_dict) but keep this optimizer's implementation: fused / capturable /
    foreach flags, and a tensor learning rate stays the same tensor (a captured graph reads it), with the
    saved value. So a checkpoint written by an eager or CPU run resumes under CUDA graphs and vice versa.
    Adam's step counters go where the implementation wants them (the device when fused or capturable), and
    each per-parameter state tensor is re-laid with its parameter's strides (fused Adam needs equal layouts:
    CUDA's checks, the CPU's silently mixes elements up)."""
    mine = [({k: g.get(k) for k in IMPLEMENTATION_KEYS}, g["lr"]) for g in optimizer.param_groups]
    optimizer.load_state_dict(saved)
    on_device = False
    for group, (flags, lr) in zip(optimizer.param_groups, mine, strict=True):
        group.update(flags)
        value = group["lr"]
        value = float(value.item()) if isinstance(value, torch.Tensor) else float(value)
        if isinstance(lr, torch.Tensor):
            lr.fill_(value)
            group["lr"] = lr
        else:
            group["lr"] = value
        on_device = on_device or bool(flags["fused"] or flags["capturable"])
    for state in optimizer.state.values():
        if isinstance(state.get("step"), torch.Tensor):
            state["step"] = state["step"].to(device if on_device else "cpu", torch.float32)
    relay_like_parameters(optimizer)


def relay_like_parameters(optimizer: torch.optim.Optimizer) -> None:
    """Give every optimizer state tensor shaped like its parameter (exp_avg, exp_avg_sq) that parameter's
    strides (e.g. channels_last (O, I, kH, kW) weights), keeping its values and dtype."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for name, value in state.items():
                same_shape = isinstance(value, torch.Tensor) and value.shape == param.shape
                if same_shape and value.stride() != param.stride():
                    state[name] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The first group's learning rate as a float (one device read when it is a tensor)."""
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)
