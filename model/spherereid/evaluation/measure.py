"""What the evaluate stage measures on a prepared set: its ranking under the set's protocol and, with
evaluate.rerank, the re-ranked one where the protocol has one shared gallery (the front ends are in
``metrics`` and ``rerank``).

The protocol is the prepared set's ``dataset.json`` entry (``{"name": "market"}`` when absent):
``market`` (the standard protocol), ``cuhk03-classic`` (with ``repeats``) or ``cuhk-sysu`` (with
``galleries``, one list of gallery indices per query).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config import EvaluateConfig
from ..data.manifest import SplitData
from .metrics import evaluate_cuhk03_classic, evaluate_features, evaluate_gallery_subsets
from .rerank import RerankParams, evaluate_reranked
from .results import REPORTED_KEYS, RankingResult

log = logging.getLogger(__name__)

# Protocols that rank each query against a gallery of its own: re-ranking needs one shared gallery.
PER_QUERY_PROTOCOLS = ("cuhk03-classic", "cuhk-sysu")
RERANK_PREFIX = "rerank_"


@dataclass(frozen=True)
class ProtocolMetrics:
    """``RankingResult.to_dict()`` of the plain ranking and of the re-ranked one (None when not run)."""

    protocol: str
    plain: dict[str, Any]
    reranked: dict[str, Any] | None

    def reported(self) -> dict[str, float]:
        """REPORTED_KEYS of the plain ranking, then the same keys with RERANK_PREFIX when re-ranked."""
        reported = {k: self.plain[k] for k in REPORTED_KEYS}
        if self.reranked is not None:
            reported.update({f"{RERANK_PREFIX}{k}": self.reranked[k] for k in REPORTED_KEYS})
        return reported


def protocol_name(protocol: dict[str, Any]) -> str:
    """The protocol's name; ``market`` (the standard protocol) when the entry has none."""
    return str(protocol.get("name", "market"))


def measure(
    protocol: dict[str, Any],
    qf: np.ndarray,
    gf: np.ndarray,
    query: SplitData,
    gallery: SplitData,
    cfg: EvaluateConfig,
) -> ProtocolMetrics:
    """Rank query features qf (Q, D) against gallery features gf (G, D) under ``protocol``; re-rank too
    when cfg.rerank is on (skipped, with a warning, for a per-query protocol)."""
    plain = rank_under_protocol(protocol, qf, gf, query, gallery, cfg).to_dict()
    reranked = None
    name = protocol_name(protocol)
    if cfg.rerank and name in PER_QUERY_PROTOCOLS:
        log.warning("evaluate.rerank: skipped, re-ranking needs one shared gallery, not protocol %s", name)
    elif cfg.rerank:
        params = RerankParams(cfg.rerank_k1, cfg.rerank_k2, cfg.rerank_lambda)
        reranked = evaluate_reranked(
            qf,
            gf,
            query.pids,
            gallery.pids,
            query.camids,
            gallery.camids,
            params,
            metric=cfg.metric,
            max_rank=cfg.max_rank,
            query_chunk=cfg.query_chunk,
        ).to_dict()
    return ProtocolMetrics(protocol=name, plain=plain, reranked=reranked)


def rank_under_protocol(
    protocol: dict[str, Any],
    qf: np.ndarray,
    gf: np.ndarray,
    query: SplitData,
    gallery: SplitData,
    cfg: EvaluateConfig,
) -> RankingResult:
    """The metrics of qf (Q, D) against gf (G, D) under the protocol the prepared set names."""
    name = protocol_name(protocol)
    labelled = (qf, gf, query.pids, gallery.pids)
    cameras = (query.camids, gallery.camids)
    if name == "cuhk03-classic":
        return evaluate_cuhk03_classic(
            *labelled,
            *cameras,
            metric=cfg.metric,
            max_rank=cfg.max_rank,
            repeats=int(protocol.get("repeats", 10)),
            seed=0,
        )
    if name == "cuhk-sysu":
        galleries = [np.asarray(g, dtype=np.int64) for g in protocol["galleries"]]
        return evaluate_gallery_subsets(*labelled, galleries, max_rank=cfg.max_rank, metric=cfg.metric)
    return evaluate_features(
        *labelled, *cameras, metric=cfg.metric, max_rank=cfg.max_rank, query_chunk=cfg.query_chunk
    )
