"""The optimizer: Adam built for the device (fused, graph-capturable on CUDA) and restored from a checkpoint
without losing that implementation. The learning-rate schedule is in `schedule`."""

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
    capturable: bool = False,
) -> torch.optim.Adam:
    """Adam (coupled L2 weight decay, as the paper's). On CUDA the fused kernel (one launch for all
    parameters); `capturable` (CUDA graphs) also makes the learning rate a device tensor that the
    scheduler updates in place. On the CPU the reference implementation, unchanged."""
    if device.type != "cuda":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, betas=betas)
    optimizer = torch.optim.Adam(
        params,
        lr=torch.tensor(lr, dtype=torch.float32, device=device) if capturable else lr,
        weight_decay=weight_decay,
        betas=betas,
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
    Adam's step counters go where the implementation wants them (the device when fused or capturable)."""
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


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The first group's learning rate as a float (one device read when it is a tensor)."""
    lr = optimizer.param_groups[0]["lr"]
    return float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)
