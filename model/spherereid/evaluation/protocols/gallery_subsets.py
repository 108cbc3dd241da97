"""Per-query gallery subsets: each query ranked against its own gallery (CUHK-SYSU TestG-N with
ground-truth boxes). It loops over queries; its test sets are small."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import MetricsError
from ..inputs import check_features, check_labels
from ..results import HitAccumulator, RankingResult, int_labels
from .per_query import add_rows, distance_chunks


def evaluate_gallery_subsets(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    q_pids,
    g_pids,
    galleries: Sequence[np.ndarray],
    max_rank: int = 50,
    metric: str = "cosine",
    query_chunk: int = 1024,
) -> RankingResult:
    """Each query i is ranked against its own gallery ``gf[galleries[i]]`` (e.g. CUHK-SYSU TestG-N crops
    from ground-truth boxes). True matches: same pid; no camera filtering, no junk. top-k = a true match
    within the first k of that gallery; AP over that gallery. Queries without a true match in their
    gallery are skipped and counted."""
    q, g = check_features(qf, gf)
    zeros_q, zeros_g = np.zeros(q.shape[0], np.int64), np.zeros(g.shape[0], np.int64)
    qp, gp, _, _ = check_labels(q_pids, g_pids, zeros_q, zeros_g, q.shape[0], g.shape[0])
    if len(galleries) != q.shape[0]:
        raise MetricsError(f"galleries has {len(galleries)} entries but there are {q.shape[0]} queries")
    subsets = []
    for i, sub in enumerate(galleries):
        idx = int_labels(sub, f"galleries[{i}]")
        if len(idx) and (idx.min() < 0 or idx.max() >= g.shape[0]):
            raise MetricsError(f"galleries[{i}] has indices outside 0..{g.shape[0] - 1}")
        subsets.append(idx)
    acc = HitAccumulator(max_rank)
    for a, dist in distance_chunks(q, g, metric, query_chunk):
        rows, ranks = [], []
        for i in range(dist.shape[0]):
            idx = subsets[a + i]
            order = np.argsort(dist[i, idx], kind="stable")
            hits = np.flatnonzero(gp[idx[order]] == qp[a + i])
            rows.append(np.full(len(hits), i))
            ranks.append(hits)
        add_rows(acc, rows, ranks, dist.shape[0])
    return acc.result()
