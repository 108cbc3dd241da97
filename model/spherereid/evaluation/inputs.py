"""Input checks shared by the evaluation functions; they raise MetricsError naming the array."""

from __future__ import annotations

import numpy as np
import torch

from .distances import as_features
from .errors import MetricsError
from .results import int_labels


def check_labels(
    q_pids, g_pids, q_camids, g_camids, num_q: int, num_g: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four label arrays as 1-D int64, checked against the number of queries / gallery items."""
    arrays = {
        "q_pids": int_labels(q_pids, "q_pids"),
        "g_pids": int_labels(g_pids, "g_pids"),
        "q_camids": int_labels(q_camids, "q_camids"),
        "g_camids": int_labels(g_camids, "g_camids"),
    }
    for name, arr in arrays.items():
        want = num_q if name.startswith("q") else num_g
        kind = "queries" if name.startswith("q") else "gallery items"
        if len(arr) != want:
            raise MetricsError(f"{name} has {len(arr)} entries but there are {want} {kind}")
    return arrays["q_pids"], arrays["g_pids"], arrays["q_camids"], arrays["g_camids"]


def check_features(qf, gf) -> tuple[torch.Tensor, torch.Tensor]:
    """qf (Q, D), gf (G, D) as float32 tensors; MetricsError on bad shape, empty set or non-finite value."""
    q, g = as_features(qf, "qf"), as_features(gf, "gf")
    if q.shape[1] != g.shape[1]:
        raise MetricsError(f"feature dimensions differ: qf has {q.shape[1]} columns, gf has {g.shape[1]}")
    for name, t in (("qf", q), ("gf", g)):
        if t.shape[0] == 0:
            raise MetricsError(f"{name} is empty (no rows)")
        if not all_finite(t):
            raise MetricsError(f"{name} contains NaN or infinite values")
    return q, g


def all_finite(t: torch.Tensor) -> bool:
    """True when no entry of t (N, D) is NaN or infinite, without a full-size temporary: a row with a
    non-finite entry has a non-finite sum; rows whose sum overflowed are checked exactly."""
    sums = t.sum(dim=1)
    suspect = torch.nonzero(~torch.isfinite(sums)).view(-1)
    return not suspect.numel() or bool(torch.isfinite(t[suspect]).all())
