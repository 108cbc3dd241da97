"""Device and precision policy shared by training and inference: which device, whether it works, and
which autocast dtype a precision name means there."""

from __future__ import annotations

import os

import torch

REQUIRE_CUDA_ENV = "SPHEREREID_REQUIRE_CUDA"  # "1": 'auto' means cuda (the pipeline sets it on GPU tasks)


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when usable else cpu; otherwise torch.device(name).

    An explicit cuda device without a usable GPU is an error naming the reason (no driver, a driver too
    old for this build's CUDA, no GPU visible), never a silent CPU run. With SPHEREREID_REQUIRE_CUDA=1 in
    the environment (set by the pipeline on tasks given a GPU), 'auto' is 'cuda'."""
    if name == "auto" and os.environ.get(REQUIRE_CUDA_ENV, "") == "1":
        name = "cuda"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device '{name}' is asked (train.device, or {REQUIRE_CUDA_ENV}=1 on a GPU task) but CUDA is "
            f"not usable ({_cuda_failure()}); fix the node's NVIDIA driver / GPU request, or set "
            "train.device to auto or cpu"
        )
    return device


def _cuda_failure() -> str:
    """Why CUDA cannot be used, in one line (torch's own message when it has one)."""
    if not torch.backends.cuda.is_built():
        return "this PyTorch build has no CUDA"
    try:
        torch.cuda.init()
    except Exception as exc:  # noqa: BLE001 - any init failure is the reason we report
        return " ".join(str(exc).split())[:300]
    return f"{torch.cuda.device_count()} GPUs visible"


def check_device(device: torch.device) -> str:
    """Run one kernel on `device` and wait for it, so a GPU this build cannot drive (driver too old, no
    kernel image for the architecture) fails now with the reason, not hours later. Returns a description
    ('cpu' or 'cuda:0 NVIDIA H200 (CUDA 13.0, capability 9.0)')."""
    if device.type != "cuda":
        return device.type
    try:
        probe = torch.ones(8, device=device)
        float((probe @ probe).item())
        torch.cuda.synchronize(device)
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(
            f"{device}: a first CUDA kernel failed ({' '.join(str(exc).split())[:300]}); the node's NVIDIA "
            f"driver may be too old for this image's CUDA {torch.version.cuda}"
        ) from None
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    return f"{device} {name} (CUDA {torch.version.cuda}, capability {major}.{minor})"


AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def effective_precision(precision: str, device: torch.device) -> str:
    """The precision training uses: `precision` on CUDA, fp32 elsewhere (autocast applies on CUDA only)."""
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"unknown precision '{precision}' (known: fp32, bf16, fp16); check train.precision")
    return precision if device.type == "cuda" else "fp32"
