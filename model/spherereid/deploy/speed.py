"""Images/s of two ONNX models on the same batch, in the same process, timed in turns.

Each repetition times one run of the reference and one of the candidate, back to back, so that a
machine shared with other work slows both alike; the figures are the medians over the repetitions (the
ratio is the median of the per-repetition ratios). The CPU's name and whether it has VNNI go with them:
int8 speed depends on it.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .onnx_export import OnnxEmbedder

REPEATS = 5
SPEED_BATCH = 64
CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class SpeedComparison:
    """Median images/s of the fp32 and the int8 model on one batch, and the median of their ratios."""

    fp32_images_per_s: float
    int8_images_per_s: float
    speedup: float  # int8 over fp32
    batch: int
    repeats: int
    cpu: str

    def summary(self) -> str:
        return (
            f"int8 {self.int8_images_per_s:.1f} images/s vs fp32 {self.fp32_images_per_s:.1f} images/s: "
            f"{self.speedup:.2f}x (batch {self.batch}, median of {self.repeats}, {self.cpu})"
        )


def cpu_description(cpuinfo: Path = CPUINFO) -> str:
    """'<model name> (VNNI)' or '<model name> (no VNNI)' from /proc/cpuinfo; 'unknown CPU' without it."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return "unknown CPU"
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the end of the first processor's block
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name", "unknown CPU")
    flags = set(fields.get("flags", "").split())
    return f"{name} ({'VNNI' if flags & set(VNNI_FLAGS) else 'no VNNI'})"


def compare_speed(
    fp32_path: str | Path,
    int8_path: str | Path,
    images: np.ndarray,
    *,
    repeats: int = REPEATS,
    threads: int = 0,
) -> SpeedComparison:
    """Time both models on `images` (one batch, uint8 at the stored size) `repeats` times in turns, after
    one warm-up run each; `threads` 0 is onnxruntime's default."""
    fp32, int8 = OnnxEmbedder(fp32_path, threads=threads), OnnxEmbedder(int8_path, threads=threads)
    batch = np.ascontiguousarray(images)
    n = len(batch)
    fp32(batch, batch_size=n), int8(batch, batch_size=n)  # warm-up: allocations, kernel selection
    rates: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(repeats):
        for name, session in (("fp32", fp32), ("int8", int8)):
            start = time.perf_counter()
            session(batch, batch_size=n)
            rates[name].append(n / (time.perf_counter() - start))
    ratio = statistics.median(i / f for i, f in zip(rates["int8"], rates["fp32"]))
    return SpeedComparison(
        statistics.median(rates["fp32"]),
        statistics.median(rates["int8"]),
        ratio,
        n,
        repeats,
        cpu_description(),
    )
