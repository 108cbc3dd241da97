"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), exact, in O((Q + G) * k1) memory.

Parts: params (k1, k2, lambda), sources (where the base distances come from), neighbours (the k nearest
items in one chunked pass), reciprocal (k-reciprocal sets and the sparse encoding V), jaccard (the
inverted-index sum), final_distances (the front ends yielding re-ranked distances), metrics (their
standard-protocol metrics).
"""

from .final_distances import rerank, rerank_chunks, rerank_distances
from .metrics import evaluate_reranked
from .params import RerankParams, check_rerank_params

__all__ = [
    "RerankParams",
    "check_rerank_params",
    "evaluate_reranked",
    "rerank",
    "rerank_chunks",
    "rerank_distances",
]
