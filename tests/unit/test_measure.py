"""evaluation.measure: the evaluate stage's metrics under each protocol a prepared set names, re-ranked only
where there is one shared gallery; the reported dict follows REPORTED_KEYS (plain, then rerank_)."""

import logging

import numpy as np
import pytest
from fixtures.rerank_reference import clustered, cosine, dense_reference

from spherereid.config import EvaluateConfig
from spherereid.data.manifest import SplitData
from spherereid.evaluation.measure import measure
from spherereid.evaluation.metrics import evaluate_distmat
from spherereid.evaluation.results import REPORTED_KEYS


def split(pids, camids) -> SplitData:
    n = len(pids)
    return SplitData(np.zeros((n, 1, 1, 3), np.uint8), np.asarray(pids), np.asarray(camids), np.zeros(n), [])


def test_market_protocol_reports_plain_then_reranked_keys():
    qf, gf, qp, gp, qc, gc = clustered(seed=3, num_q=12, num_g=40)
    cfg = EvaluateConfig(max_rank=5, rerank=True, rerank_k1=6, rerank_k2=2, rerank_lambda=0.3)
    got = measure({"name": "market"}, qf, gf, split(qp, qc), split(gp, gc), cfg)
    plain = evaluate_distmat(cosine(qf, gf), qp, gp, qc, gc, max_rank=5).to_dict()
    reranked = evaluate_distmat(
        dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf), 6, 2, 0.3), qp, gp, qc, gc, max_rank=5
    ).to_dict()
    reported = got.reported()
    assert list(reported) == [*REPORTED_KEYS, *(f"rerank_{k}" for k in REPORTED_KEYS)]
    for key in REPORTED_KEYS:
        assert reported[key] == pytest.approx(plain[key], abs=1e-6)
        assert reported[f"rerank_{key}"] == pytest.approx(reranked[key], abs=1e-6)
    assert (
        got.protocol == "market"
        and measure({}, qf, gf, split(qp, qc), split(gp, gc), cfg).protocol == "market"
    )


def test_per_query_protocol_skips_reranking_with_a_warning(caplog):
    # Gallery subsets (CUHK-SYSU): query 0 sees [g1, g0] -> true match g0 at distance 0 first: rank-1 1.
    qf = np.array([[1.0, 0.0]], dtype=np.float32)
    gf = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    protocol = {"name": "cuhk-sysu", "galleries": [[1, 0]]}
    cfg = EvaluateConfig(max_rank=2, rerank=True)
    with caplog.at_level(logging.WARNING):
        got = measure(protocol, qf, gf, split([7], [0]), split([7, 8], [0, 0]), cfg)
    assert got.reranked is None and "re-ranking needs one shared gallery" in caplog.text
    assert list(got.reported()) == list(REPORTED_KEYS)
    assert (got.plain["rank1"], got.plain["mAP"], got.plain["num_queries"]) == (1.0, 1.0, 1)
