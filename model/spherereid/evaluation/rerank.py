"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), exact, in O((Q + G) * k1) memory.

The final distance between query i and gallery item j is

    (1 - lambda) * jaccard(i, j) + lambda * od[i, j],   jaccard = 1 - m / (2 - m),
    m = sum_k min(V[i, k], V[j, k]),

with od and V as in ``reciprocal`` (squared distances over column maxima; Gaussian-weighted expanded
k-reciprocal sets, query-expanded over the k2 nearest rows). It equals the usual dense algorithm; this
implementation never holds an (N, N) matrix: one chunked pass finds the k1 + 1 nearest neighbours and
the column maxima, V is sparse, and m is summed through an inverted index (gallery rows of V by
column), one chunk of queries at a time. Ties in the neighbour lists go to the lower item index.

Front ends: ``rerank_chunks`` (yields (first query, (q, G) chunk) of final distances), ``rerank`` and
``rerank_distances`` (the whole (Q, G) matrix, for small sets), ``evaluate_reranked`` (standard
protocol metrics, chunk by chunk).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .core import HitAccumulator, MetricsError, RankingResult
from .inputs import check_features, check_labels
from .neighbours import nearest_neighbours, safe_maxima
from .ranking import CHUNK_ELEMENTS, StandardProtocol, rows_per_chunk
from .reciprocal import SparseRows, encode
from .rerank_sources import FeatureSource, MatrixSource

logger = logging.getLogger(__name__)

# Query x gallery item pairs expanded at once through the inverted index (about 24 bytes each).
PAIR_BUDGET = 1 << 22


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
    k1: int, k2: int, lambda_: float, names: tuple[str, str, str] = ("k1", "k2", "lambda")
):
    """Raise MetricsError naming the parameter (``names`` gives the flag or key spelling) when
    k1 < 1, k2 outside 1..k1 or lambda outside [0, 1]."""
    n1, n2, nl = names
    if int(k1) != k1 or k1 < 1:
        raise MetricsError(f"{n1} must be an integer >= 1, got {k1}")
    if int(k2) != k2 or not 1 <= k2 <= k1:
        raise MetricsError(f"{n2} must be an integer in 1..{k1} (at most {n1}), got {k2}")
    if not 0.0 <= float(lambda_) <= 1.0:
        raise MetricsError(f"{nl} must be in [0, 1], got {lambda_}")


def rerank_chunks(
    source,
    params: RerankParams = RerankParams(),
    chunk_elements: int = CHUNK_ELEMENTS,
    query_chunk: int = 1024,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Final re-ranked distances, (first query index, (q, G) float32) per chunk of queries."""
    n, num_q = source.num_items, source.num_query
    num_g = n - num_q
    logger.info("re-ranking %d queries x %d gallery items (k1=%d, k2=%d, lambda=%g)", num_q, num_g,
                params.k1, params.k2, params.lambda_)  # fmt: skip
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


class InvertedIndex:
    """The gallery rows of V by column: for each column k, the gallery items j with V[j, k] != 0."""

    def __init__(self, v: SparseRows, num_query: int) -> None:
        n = v.num_rows
        start = int(v.ptr[num_query])
        cols = v.col[start:]
        order = torch.sort(cols, stable=True).indices
        self.item = (v.row_ids()[start:] - num_query)[order]  # (nnz_g,) gallery index
        self.val = v.val[start:][order]
        self.ptr = torch.zeros(n + 1, dtype=torch.int64)
        self.ptr[1:] = torch.cumsum(torch.bincount(cols, minlength=n), 0)
        self.num_gallery = n - num_query

    def jaccard(
        self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, a: int, q: int
    ) -> torch.Tensor:
        """(q, G) float32 Jaccard distances of queries a..a+q-1 given their V entries (rows, cols, vals)."""
        g = self.num_gallery
        overlap = torch.zeros(q * g, dtype=torch.float32)
        length = self.ptr[cols + 1] - self.ptr[cols]
        ends = torch.cumsum(length, 0)
        s = 0
        while s < cols.numel():  # groups of entries expanding to about PAIR_BUDGET pairs
            base = int(ends[s - 1]) if s else 0
            e = max(s + 1, int(torch.searchsorted(ends, base + PAIR_BUDGET, right=True)))
            owner = torch.repeat_interleave(torch.arange(s, e), length[s:e])
            first = ends[owner] - length[owner] - base  # the entry's first pair in this group
            pos = self.ptr[cols[owner]] + torch.arange(owner.numel()) - first
            weight = torch.minimum(vals[owner], self.val[pos])
            overlap.index_add_(0, (rows[owner] - a) * g + self.item[pos], weight)
            s = e
        overlap = overlap.view(q, g)
        return overlap.div_(2.0 - overlap).neg_().add_(1.0)


def rerank(
    qf: torch.Tensor | np.ndarray,
    gf: torch.Tensor | np.ndarray,
    params: RerankParams = RerankParams(),
    metric: str = "cosine",
) -> torch.Tensor:
    """Re-ranked (Q, G) float32 distances from features qf (Q, d), gf (G, d). Holds the whole (Q, G)
    result: for large sets use ``evaluate_reranked`` or ``rerank_chunks``."""
    q, g = check_features(qf, gf)
    return _collect(FeatureSource(q, g, metric), params)


def rerank_distances(q_g_dist, q_q_dist, g_g_dist, params: RerankParams = RerankParams()) -> torch.Tensor:
    """Re-ranked (Q, G) float32 distances from the query-gallery (Q, G), query-query (Q, Q) and
    gallery-gallery (G, G) base distances."""
    return _collect(MatrixSource(q_g_dist, q_q_dist, g_g_dist), params)


def _collect(source, params: RerankParams) -> torch.Tensor:
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
    params: RerankParams = RerankParams(),
    metric: str = "cosine",
    max_rank: int = 50,
    query_chunk: int = 1024,
) -> RankingResult:
    """Standard-protocol metrics (as ``metrics.evaluate_features``) of the re-ranked distances."""
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
