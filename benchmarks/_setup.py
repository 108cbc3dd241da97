"""Shared set-up of the GPU benchmarks (torch + numpy only: they run on a bare GPU machine too)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Recipe:
    """Network, sizes and data of one benchmark case."""

    name: str
    model: dict = field(default_factory=dict)
    stored: tuple[int, int] = (288, 144)
    crop: tuple[int, int] = (256, 128)
    images: int = 12936
    ids: int = 751
    p: int = 16
    k: int = 4


# The paper recipe at Market-1501 size (12,936 train images of 751 ids), and the CPU quickstart's network.
PAPER = Recipe(
    "paper (ResNet-50, head D, 1024-d, Market-sized)",
    dict(backbone="resnet50", head="D", embedding_dim=1024, last_stride=1, dropout=0.5, pretrained="none"),
)
# The quickstart's sizes: its train split (1208 images of 150 ids: 9 P x K steps per epoch, as the main job
# trains; a 2-step epoch would weigh the per-epoch checkpoint 4.5 times as much as the main job does).
QUICK = Recipe(
    "quickstart (ResNet-18, head D, 256-d, the main job's 1208 images of 150 ids)",
    dict(backbone="resnet18", head="D", embedding_dim=256, last_stride=1, dropout=0.5, pretrained="none"),
    stored=(144, 72),
    crop=(128, 64),
    images=1208,
    ids=150,
)


def default_recipe(device: torch.device) -> Recipe:
    return PAPER if device.type == "cuda" else QUICK


def random_memmap(root: Path, n: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A read-only uint8 (n, h, w, 3) .npy memmap of random pixels under `root` (as preprocess stores)."""
    path = Path(root) / "images.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, *size, 3))
    rng = np.random.default_rng(seed)
    for start in range(0, n, 1024):
        arr[start : start + 1024] = rng.integers(0, 256, size=arr[start : start + 1024].shape, dtype=np.uint8)
    arr.flush()
    del arr
    return np.load(path, mmap_mode="r")


def temp_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="spherereid-bench-")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"CPU ({torch.get_num_threads()} threads), torch {torch.__version__}"
