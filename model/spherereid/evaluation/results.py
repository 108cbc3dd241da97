"""Ranking results, the reported metric keys and the per-query statistics shared by every protocol.

Every protocol reduces a query to the 0-based ranks of its true matches among the gallery items it
may see (junk and ignored items removed), sorted ascending. From those ranks ``r_1 < ... < r_m``:

- CMC: the query counts at rank k (1-based) when ``r_1 < k``.
- AP (torchreid / fast-reid): ``mean_j  j / (r_j + 1)``, the mean precision at each hit.
- AP (official Market-1501 / CUHK03 MATLAB ``compute_AP.m``): trapezoid rule over the precision/recall
  curve, ``sum_j (1/m) * (p_prev + j / (r_j + 1)) / 2`` where ``p_prev`` is the precision at the ranked
  position just before the hit, ``(j - 1) / r_j``, or 1 when the hit is at the top (``r_j = 0``).
- INP: ``m / (r_m + 1)``.

Queries with no true match are skipped and counted. All averages (CMC, mAP, mAP_official, mINP) are
over the valid queries. The MATLAB code divides by all queries instead; multiply ``mAP_official`` by
``num_valid_queries / num_queries`` for that figure (identical on Market-1501 and CUHK03-NP, where every
query has a match in another camera).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import MetricsError

REPORTED_RANKS = (1, 5, 10)
# The metrics every front end reports, in this order: metrics.json (plain, then with the rerank_ prefix),
# the MLflow run, the features CLI's stdout and the end-of-job summary.
REPORTED_KEYS: tuple[str, ...] = (
    *(f"rank{k}" for k in REPORTED_RANKS),
    "mAP",
    "mAP_official",
    "mINP",
    "num_valid_queries",
    "num_queries",
)


@dataclass
class RankingResult:
    """Averaged ranking metrics. cmc: (max_rank,) in [0, 1]; ``ranks`` holds rank-1/5/10 exactly, even
    when max_rank < 10."""

    cmc: np.ndarray
    mAP: float
    mAP_official: float
    mINP: float
    num_valid_queries: int
    num_queries: int
    ranks: dict[int, float] = field(default_factory=dict)

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based)."""
        if k in self.ranks:
            return self.ranks[k]
        if not 1 <= k <= len(self.cmc):
            raise MetricsError(f"rank-{k} is beyond max_rank={len(self.cmc)}")
        return float(self.cmc[k - 1])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict: rank1, rank5, rank10, mAP, mAP_official, mINP, counts and the cmc list."""
        return {
            **{f"rank{k}": self.rank(k) for k in REPORTED_RANKS},
            "mAP": float(self.mAP),
            "mAP_official": float(self.mAP_official),
            "mINP": float(self.mINP),
            "num_valid_queries": int(self.num_valid_queries),
            "num_queries": int(self.num_queries),
            "cmc": [float(x) for x in self.cmc],
        }


class HitAccumulator:
    """Sums per-query statistics over chunks of queries; ``result()`` averages them."""

    def __init__(self, max_rank: int) -> None:
        if int(max_rank) < 1:
            raise MetricsError(f"max_rank must be >= 1, got {max_rank}")
        self.max_rank = int(max_rank)
        self._width = max(self.max_rank, max(REPORTED_RANKS))
        self.first_hits = np.zeros(self._width + 1, dtype=np.int64)  # last bin: first hit beyond width
        self.sum_ap = 0.0
        self.sum_ap_official = 0.0
        self.sum_inp = 0.0
        self.num_valid = 0
        self.num_queries = 0

    def add(self, rows: torch.Tensor, ranks: torch.Tensor, num_rows: int) -> None:
        """rows: (H,) int64 query index within the chunk, non-decreasing; ranks: (H,) int64 0-based rank
        of each true match among the query's visible gallery, ascending within a row. Rows of the
        chunk without an entry are queries with no true match."""
        self.num_queries += int(num_rows)
        if rows.numel() == 0:
            return
        rows = rows.to(torch.int64)
        rank = ranks.to(torch.float64)
        counts = torch.bincount(rows, minlength=num_rows)
        ends = torch.cumsum(counts, 0)
        starts = ends - counts
        j = torch.arange(rows.numel(), dtype=torch.float64) - starts[rows].to(torch.float64) + 1.0
        m = counts[rows].to(torch.float64)
        precision = j / (rank + 1.0)
        prev_precision = torch.where(rank > 0, (j - 1.0) / rank.clamp(min=1.0), torch.ones_like(rank))
        self.sum_ap += float((precision / m).sum())
        self.sum_ap_official += float(((prev_precision + precision) / (2.0 * m)).sum())
        valid = counts > 0
        first = ranks[starts[valid]].to(torch.int64)
        last = ranks[ends[valid] - 1].to(torch.float64)
        self.sum_inp += float((counts[valid].to(torch.float64) / (last + 1.0)).sum())
        self.num_valid += int(valid.sum())
        hist = torch.bincount(first.clamp(max=self._width), minlength=self._width + 1)
        self.first_hits += hist.numpy()

    def add_first_hits(self, first_ranks: np.ndarray) -> None:
        """Extra first-hit ranks (used by protocols that replace the CMC, e.g. CUHK03 classic)."""
        clipped = np.minimum(np.asarray(first_ranks, dtype=np.int64), self._width)
        self.first_hits += np.bincount(clipped, minlength=self._width + 1)

    def cmc_curve(self, denominator: int) -> np.ndarray:
        """(width,) CMC from the first-hit histogram divided by ``denominator``."""
        return np.cumsum(self.first_hits[: self._width]) / float(denominator)

    def result(self, cmc: np.ndarray | None = None) -> RankingResult:
        """Average over valid queries; ``cmc`` (width,) overrides the curve from the first hits."""
        if self.num_valid == 0:
            raise MetricsError(
                f"no valid query: none of the {self.num_queries} queries has a true match in the gallery "
                "(same identity, other camera)"
            )
        n = float(self.num_valid)
        curve = self.cmc_curve(self.num_valid) if cmc is None else np.asarray(cmc, dtype=np.float64)
        return RankingResult(
            cmc=curve[: self.max_rank].copy(),
            mAP=self.sum_ap / n,
            mAP_official=self.sum_ap_official / n,
            mINP=self.sum_inp / n,
            num_valid_queries=self.num_valid,
            num_queries=self.num_queries,
            ranks={k: float(curve[k - 1]) for k in REPORTED_RANKS},
        )


def int_labels(x: Any, name: str) -> np.ndarray:
    """1-D int64 label array; raises MetricsError naming ``name`` otherwise."""
    arr = np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise MetricsError(f"{name}: expected a 1-D array of integers, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr % 1):
            raise MetricsError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)
