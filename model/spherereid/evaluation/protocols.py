"""Protocols beyond the standard one: CUHK03 classic (single-gallery-shot) and per-query gallery subsets
(CUHK-SYSU TestG-N with ground-truth boxes). Both loop over queries; their test sets are small.
Tie rule as everywhere: distance, then gallery index (stable sort)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .core import HitAccumulator, MetricsError, RankingResult, int_labels
from .distances import DistanceError, GalleryDistances
from .inputs import check_features, check_labels
from .ranking import rows_per_chunk


def _distance_chunks(q: torch.Tensor, g: torch.Tensor, metric: str, query_chunk: int):
    """Yields (first query index, (q, G) numpy distance chunk)."""
    try:
        distances = GalleryDistances(g, metric)
    except DistanceError as exc:
        raise MetricsError(str(exc)) from None
    step = rows_per_chunk(query_chunk, g.shape[0])
    for a in range(0, q.shape[0], step):
        yield a, distances(q[a : a + step]).numpy()


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
    for a, dist in _distance_chunks(q, g, metric, query_chunk):
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
            first = np.empty(int(repeats), dtype=np.int64)
            for r in range(int(repeats)):
                perm = rng.permutation(len(visible))
                _, one_each = np.unique(pids[perm], return_index=True)
                drawn = perm[one_each]
                true_pos = position[drawn[pids[drawn] == pid][0]]
                first[r] = int(np.count_nonzero(position[drawn] < true_pos))
            sampled.add_first_hits(first)
        _add_rows(acc, rows, ranks, dist.shape[0])
    if acc.num_valid == 0:
        return acc.result()  # raises the no-valid-query error
    return acc.result(cmc=sampled.cmc_curve(acc.num_valid * int(repeats)))


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
    for a, dist in _distance_chunks(q, g, metric, query_chunk):
        rows, ranks = [], []
        for i in range(dist.shape[0]):
            idx = subsets[a + i]
            order = np.argsort(dist[i, idx], kind="stable")
            hits = np.flatnonzero(gp[idx[order]] == qp[a + i])
            rows.append(np.full(len(hits), i))
            ranks.append(hits)
        _add_rows(acc, rows, ranks, dist.shape[0])
    return acc.result()


def _add_rows(acc: HitAccumulator, rows: list[np.ndarray], ranks: list[np.ndarray], num_rows: int) -> None:
    if rows:
        acc.add(torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(ranks)), num_rows)
    else:
        acc.add(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), num_rows)
