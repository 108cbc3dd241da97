"""Standard-protocol metrics of the k-reciprocal re-ranked distances, chunk by chunk."""

from __future__ import annotations

import numpy as np
import torch

from ..inputs import check_features, check_labels
from ..protocols.standard import StandardProtocol
from ..ranking import rows_per_chunk
from ..results import HitAccumulator, RankingResult
from .final_distances import rerank_chunks
from .params import PAPER_PARAMS, RerankParams
from .sources import FeatureSource


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
