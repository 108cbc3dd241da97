"""Device and precision policy shared by training and inference: which device (made the current CUDA device
before any CUDA work), whether it works, and which autocast dtype a precision name means there ('auto':
bf16 only where the hardware computes it natively)."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .contracts import REQUIRE_CUDA_ENV

log = logging.getLogger(__name__)


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


def activate_device(device: torch.device, set_device: Callable[[int], None] | None = None) -> torch.device:
    """Make `device` this process's current CUDA device (`set_device`, torch.cuda.set_device by default), to
    be called before any CUDA work: streams, CUDA-graph capture and new tensors otherwise go to the current
    device (cuda:0), and a graph captured for cuda:N on cuda:0's stream records nothing. No-op off CUDA and
    for 'cuda' without an index (the current device). Returns `device`."""
    if device.type == "cuda" and device.index is not None:
        (set_device or torch.cuda.set_device)(device.index)
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
PRECISION_NAMES = ("auto", *AUTOCAST_DTYPES)
_NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags: bf16 matmuls in hardware


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX-BF16 or AVX512-BF16), detected once and logged:
    torch's CPU capability when it names AMX, else the /proc/cpuinfo flags."""
    capability = str(torch.backends.cpu.get_cpu_capability())
    found = "AMX" in capability.upper()
    if not found:
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        flags = set(text.split())
        found = any(flag in flags for flag in _NATIVE_BF16_FLAGS)
    log.info("CPU capability %s: native bf16 %s", capability, "yes" if found else "no")
    return found


NATIVE_BF16_CUDA_CAPABILITY = (8, 0)  # Ampere and later compute in bf16; V100 (7.0) and T4 (7.5) emulate it


def auto_precision(device_type: str, cuda_capability: tuple[int, int] | None, cpu_bf16: bool) -> str:
    """What 'auto' means: bf16 where the hardware computes it natively (CUDA compute capability >= 8.0,
    or a CPU with AMX / AVX512-BF16), fp32 elsewhere."""
    if device_type == "cuda":
        native = cuda_capability is not None and tuple(cuda_capability) >= NATIVE_BF16_CUDA_CAPABILITY
        return "bf16" if native else "fp32"
    return "bf16" if cpu_bf16 else "fp32"


_LOGGED_FP32_DEVICES: set[str] = set()


def _cuda_auto_precision(device: torch.device) -> str:
    """'auto' on one CUDA device ('cuda' alone: the current one) from its compute capability; an fp32 choice
    is logged once per device."""
    major, minor = torch.cuda.get_device_capability(device)
    chosen = auto_precision("cuda", (major, minor), cpu_bf16=False)
    if chosen == "fp32" and str(device) not in _LOGGED_FP32_DEVICES:
        _LOGGED_FP32_DEVICES.add(str(device))
        log.info(
            "%s has compute capability %d.%d (< %d.%d): no native bf16, precision auto is fp32",
            device,
            major,
            minor,
            *NATIVE_BF16_CUDA_CAPABILITY,
        )
    return chosen


def effective_precision(precision: str, device: torch.device) -> str:
    """The precision a run uses on `device`: 'auto' is bf16 where the hardware computes bf16 (CUDA compute
    capability >= 8.0; CPUs with native bf16), fp32 elsewhere (`auto_precision`); fp32 and bf16 as asked on
    any device; fp16 on CUDA only (an error naming train.precision on the CPU, where fp16 autocast is slow
    and has no GradScaler benefit)."""
    if precision not in PRECISION_NAMES:
        raise ValueError(
            f"unknown precision '{precision}' (known: {', '.join(PRECISION_NAMES)}); check train.precision"
        )
    if precision == "auto":
        if device.type == "cuda":
            return _cuda_auto_precision(device)
        return auto_precision(device.type, None, cpu_has_native_bf16())
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision fp16 needs CUDA but the device is {device.type}; set train.precision to auto, "
            "bf16 or fp32"
        )
    return precision


def memory_format(device: torch.device, precision: str) -> torch.memory_format:
    """channels_last on CUDA and, on the CPU, under bf16/fp16 autocast (their fast kernels want it);
    contiguous for fp32 on the CPU, where channels_last convolutions are slower (ResNet-18 train step at
    128x64 on 2 cores: 87 vs 83 images/s on an AMX Xeon, about 2x slower on an AVX2-only EPYC).
    `precision` is the effective one (`effective_precision`)."""
    if device.type == "cuda" or precision != "fp32":
        return torch.channels_last
    return torch.contiguous_format
