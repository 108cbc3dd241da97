"""The CUHK03 classic single-gallery-shot protocol (query = gallery = test set, one random gallery item
per identity, repeated). It loops over queries; its test sets are small."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import MetricsError
from ..inputs import check_features, check_labels
from ..results import HitAccumulator, RankingResult
from .per_query import add_rows, distance_chunks


def evaluate_cuhk03_classic(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    metric: str = "cosine",
    max_rank: int = 50,
    repeats: int = 10,
    seed: int = 0,
    query_chunk: int = 1024,
) -> RankingResult:
    """CUHK03 classic single-gallery-shot protocol (query = gallery = test set).

    Per query, gallery items with the same pid and camera (and pid -1) are removed; then, ``repeats``
    times, one gallery item per identity is drawn at random and the rank of the drawn true match among
    the drawn items gives the CMC, averaged over valid queries and repeats. Draws come from
    ``np.random.default_rng(seed)`` in query order, so a seed reproduces the result. mAP, mAP_official
    and mINP are computed on the full (undrawn) ranking, as torchreid does.
    """
    if int(repeats) < 1:
        raise MetricsError(f"repeats must be >= 1, got {repeats}")
    q, g = check_features(qf, gf)
    qp, gp, qc, gc = check_labels(q_pids, g_pids, q_camids, g_camids, q.shape[0], g.shape[0])
    rng = np.random.default_rng(seed)
    acc = HitAccumulator(max_rank)
    sampled = HitAccumulator(max_rank)
    for a, dist in distance_chunks(q, g, metric, query_chunk):
        rows, ranks = [], []
        for i in range(dist.shape[0]):
            pid, cam = qp[a + i], qc[a + i]
            visible = np.flatnonzero((gp != -1) & ~((gp == pid) & (gc == cam)))
            position = np.empty(len(visible), dtype=np.int64)
            position[np.argsort(dist[i, visible], kind="stable")] = np.arange(len(visible))
            pids = gp[visible]
            hits = np.sort(position[pids == pid])
            if len(hits) == 0:
                continue
            rows.append(np.full(len(hits), i))
            ranks.append(hits)
            sampled.add_first_hits(_single_shot_first_hits(position, pids, pid, int(repeats), rng))
        add_rows(acc, rows, ranks, dist.shape[0])
    if acc.num_valid == 0:
        return acc.result()  # raises the no-valid-query error
    return acc.result(cmc=sampled.cmc_curve(acc.num_valid * int(repeats)))


def _single_shot_first_hits(
    position: np.ndarray, pids: np.ndarray, pid: int, repeats: int, rng: np.random.Generator
) -> np.ndarray:
    """(repeats,) 0-based rank of the drawn true match among the drawn items, one item per identity drawn
    each time. position, pids: (V,) ranked position and pid of each visible gallery item."""
    first = np.empty(repeats, dtype=np.int64)
    for r in range(repeats):
        perm = rng.permutation(len(position))
        _, one_each = np.unique(pids[perm], return_index=True)
        drawn = perm[one_each]
        true_pos = position[drawn[pids[drawn] == pid][0]]
        first[r] = int(np.count_nonzero(position[drawn] < true_pos))
    return first
