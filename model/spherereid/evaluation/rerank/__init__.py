"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), exact, in O((Q + G) * k1) memory.

The final distance between query i and gallery item j is

    (1 - lambda) * jaccard(i, j) + lambda * od[i, j],   jaccard = 1 - m / (2 - m),
    m = sum_k min(V[i, k], V[j, k]),

with od and V as in ``reciprocal`` (squared distances over column maxima; Gaussian-weighted expanded
k-reciprocal sets, query-expanded over the k2 nearest rows). It equals the usual dense algorithm; this
implementation never holds an (N, N) matrix: one chunked pass finds the k1 + 1 nearest neighbours and
the column maxima, V is sparse, and m is summed through an inverted index (gallery rows of V by
column), one chunk of queries at a time. Ties in the neighbour lists go to the lower item index.

Three modules: this one (the parameters and the front ends: ``rerank_chunks`` yields (first query,
(q, G) chunk) of final distances, ``rerank`` and ``rerank_distances`` the whole (Q, G) matrix for small
sets, ``evaluate_reranked`` the standard-protocol metrics chunk by chunk), ``sources`` (where the base
distances come from: features or three matrices) and ``reciprocal`` (neighbours, k-reciprocal sets,
the encoding V, the Jaccard sum).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ...config import rerank_param_problem
from ...progress import tqdm
from ..errors import MetricsError
from ..inputs import check_features, check_labels
from ..protocols.standard import StandardProtocol
from ..ranking import CHUNK_ELEMENTS, rows_per_chunk
from ..results import HitAccumulator, RankingResult
from .reciprocal import InvertedIndex, encode, nearest_neighbours, safe_maxima
from .sources import DistanceSource, FeatureSource, MatrixSource

__all__ = [
    "PAPER_PARAMS",
    "RerankParams",
    "check_rerank_params",
    "evaluate_reranked",
    "rerank",
    "rerank_chunks",
    "rerank_distances",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RerankParams:
    """k1: neighbours for the reciprocal sets; k2: rows averaged in query expansion; lambda_: weight of
    the original distance. Defaults as in the paper's experiments."""

    k1: int = 20
    k2: int = 6
    lambda_: float = 0.3

    def __post_init__(self) -> None:
        check_rerank_params(self.k1, self.k2, self.lambda_)


def check_rerank_params(
    k1: float, k2: float, lambda_: float, names: tuple[str, str, str] = ("k1", "k2", "lambda")
) -> None:
    """Raise MetricsError naming the parameter (``names`` gives the flag or key spelling) when
    k1 < 1, k2 outside 1..k1 or lambda outside [0, 1]. The rule itself lives in ``config`` (one source
    for the params file and the library)."""
    problem = rerank_param_problem(k1, k2, lambda_, names)
    if problem is not None:
        raise MetricsError(problem)


PAPER_PARAMS = RerankParams()  # k1 20, k2 6, lambda 0.3: the default of every re-ranking front end


def rerank_chunks(
    source: DistanceSource,
    params: RerankParams = PAPER_PARAMS,
    chunk_elements: int = CHUNK_ELEMENTS,
    query_chunk: int = 1024,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Final re-ranked distances, (first query index, (q, G) float32) per chunk of queries."""
    n, num_q = source.num_items, source.num_query
    num_g = n - num_q
    logger.info(
        "re-ranking %d queries x %d gallery items (k1=%d, k2=%d, lambda=%g)",
        num_q,
        num_g,
        params.k1,
        params.k2,
        params.lambda_,
    )
    nn, nn_od, maxima = nearest_neighbours(source, min(params.k1 + 1, n), chunk_elements)
    v = encode(source, nn, nn_od, maxima, params.k1, params.k2)
    del nn, nn_od
    index = InvertedIndex(v, num_q)
    scale = safe_maxima(maxima[:num_q])
    step = max(1, min(int(query_chunk), int(chunk_elements) // max(1, num_g)))
    starts = range(0, num_q, step)
    for a in tqdm(starts, desc="re-ranking: queries", unit="chunk", disable=None, leave=False):
        b = min(a + step, num_q)
        final = index.jaccard(*v.entries(a, b), a, b - a).mul_(1.0 - params.lambda_)
        od = source.query_gallery(a, b)
        od.mul_(od).div_(scale[a:b, None]).mul_(params.lambda_)
        yield a, final.add_(od)


def rerank(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    params: RerankParams = PAPER_PARAMS,
    metric: str = "cosine",
) -> torch.Tensor:
    """Re-ranked (Q, G) float32 distances from features qf (Q, d), gf (G, d). Holds the whole (Q, G)
    result: for large sets use ``evaluate_reranked`` or ``rerank_chunks``."""
    q, g = check_features(qf, gf)
    return _collect(FeatureSource(q, g, metric), params)


def rerank_distances(q_g_dist, q_q_dist, g_g_dist, params: RerankParams = PAPER_PARAMS) -> torch.Tensor:
    """Re-ranked (Q, G) float32 distances from the query-gallery (Q, G), query-query (Q, Q) and
    gallery-gallery (G, G) base distances."""
    return _collect(MatrixSource(q_g_dist, q_q_dist, g_g_dist), params)


def _collect(source: DistanceSource, params: RerankParams) -> torch.Tensor:
    """All chunks of rerank_chunks in one (Q, G) float32 matrix."""
    out = torch.empty((source.num_query, source.num_items - source.num_query), dtype=torch.float32)
    for a, chunk in rerank_chunks(source, params):
        out[a : a + chunk.shape[0]] = chunk
    return out


def evaluate_reranked(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    params: RerankParams = PAPER_PARAMS,
    metric: str = "cosine",
    max_rank: int = 50,
    query_chunk: int = 1024,
) -> RankingResult:
    """Standard-protocol metrics (as ``metrics.evaluate_features``) of the re-ranked distances, chunk by
    chunk."""
    q, g = check_features(qf, gf)
    labels = check_labels(q_pids, g_pids, q_camids, g_camids, q.shape[0], g.shape[0])
    protocol = StandardProtocol(*labels)
    acc = HitAccumulator(max_rank)
    source = FeatureSource(q, g, metric)
    del q, g
    step = rows_per_chunk(query_chunk, source.num_items - source.num_query)
    for a, chunk in rerank_chunks(source, params, query_chunk=step):
        protocol.rank_chunk(chunk, a, acc)
    return acc.result()
