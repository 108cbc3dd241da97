"""ReID ranking metrics: CMC, mAP (torchreid and official MATLAB definitions), mINP.

Protocols:
- standard (Market-1501, DukeMTMC-reID, CUHK03-NP): ``evaluate_distmat`` / ``evaluate_features``;
- CUHK03 classic single-gallery-shot: ``evaluate_cuhk03_classic``;
- per-query gallery subsets (CUHK-SYSU TestG-N with ground-truth boxes): ``evaluate_gallery_subsets``.

Definitions and averaging are documented in ``results``, the tie rule and the ranking engine in
``ranking``, each protocol's rules in ``protocols``. Memory is bounded: queries are processed in chunks of
at most ``query_chunk`` rows and at most 2**26 distances.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .distances import GalleryDistances
from .errors import MetricsError
from .inputs import check_features, check_labels
from .protocols.cuhk03_classic import evaluate_cuhk03_classic
from .protocols.gallery_subsets import evaluate_gallery_subsets
from .protocols.standard import StandardProtocol
from .ranking import rows_per_chunk, top_k_chunk
from .results import HitAccumulator, RankingResult

__all__ = [
    "MetricsError",
    "RankingResult",
    "evaluate_cuhk03_classic",
    "evaluate_distmat",
    "evaluate_features",
    "evaluate_gallery_subsets",
    "top_k",
]

logger = logging.getLogger(__name__)


def evaluate_distmat(
    distmat: torch.Tensor | np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    query_chunk: int = 1024,
) -> RankingResult:
    """Standard protocol on a distance matrix (Q, G) (smaller = closer); works through it in row chunks."""
    dist = torch.as_tensor(distmat)
    if dist.ndim != 2:
        raise MetricsError(f"distmat must be 2-D (queries x gallery), got shape {tuple(dist.shape)}")
    dist = dist.to(device="cpu", dtype=torch.float32)
    labels = check_labels(q_pids, g_pids, q_camids, g_camids, dist.shape[0], dist.shape[1])
    protocol = StandardProtocol(*labels)
    acc = HitAccumulator(max_rank)
    step = rows_per_chunk(query_chunk, dist.shape[1])
    for a in range(0, dist.shape[0], step):
        chunk = dist[a : a + step]
        if bool(torch.isnan(chunk.sum())) and bool(torch.isnan(chunk).any()):
            raise MetricsError(f"distmat contains NaN (in rows {a}..{a + len(chunk) - 1})")
        protocol.rank_chunk(chunk, a, acc)
    return acc.result()


def evaluate_features(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    metric: str = "cosine",
    max_rank: int = 50,
    query_chunk: int = 1024,
) -> RankingResult:
    """Standard protocol from features qf (Q, D), gf (G, D): distances computed and ranked chunk by chunk,
    never holding more than one chunk of the (Q, G) matrix."""
    q, g = check_features(qf, gf)
    labels = check_labels(q_pids, g_pids, q_camids, g_camids, q.shape[0], g.shape[0])
    distances = GalleryDistances(g, metric)
    protocol = StandardProtocol(*labels)
    acc = HitAccumulator(max_rank)
    step = rows_per_chunk(query_chunk, g.shape[0])
    logger.debug("evaluating %d queries x %d gallery in chunks of %d", q.shape[0], g.shape[0], step)
    for a in range(0, q.shape[0], step):
        protocol.rank_chunk(distances(q[a : a + step]), a, acc)
    return acc.result()


def top_k(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    k: int,
    metric: str = "cosine",
    query_chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery items per query (tie rule: distance, then gallery index).

    Returns indices (Q, k) int64 and distances (Q, k) float32, nearest first.
    """
    q, g = check_features(qf, gf)
    if not 1 <= int(k) <= g.shape[0]:
        raise MetricsError(f"k must be in 1..{g.shape[0]} (gallery size), got {k}")
    distances = GalleryDistances(g, metric)
    step = rows_per_chunk(query_chunk, g.shape[0])
    parts = [top_k_chunk(distances(q[a : a + step]), int(k)) for a in range(0, q.shape[0], step)]
    return (
        torch.cat([p[0] for p in parts]).numpy(),
        torch.cat([p[1] for p in parts]).numpy(),
    )
