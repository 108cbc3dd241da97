"""k-reciprocal re-ranking (evaluation.rerank: its front ends and metrics): equal to a dense reference written
here from the paper, a hand-worked case, chunking that cannot change the result; bad k1, k2, lambda are
errors naming the parameter."""

import math

import numpy as np
import pytest
import torch
from fixtures.rerank_reference import clustered, cosine, dense_reference

from spherereid.evaluation.metrics import MetricsError, evaluate_distmat
from spherereid.evaluation.rerank import (
    RerankParams,
    evaluate_reranked,
    rerank,
    rerank_chunks,
    rerank_distances,
)
from spherereid.evaluation.rerank.sources import FeatureSource


@pytest.mark.parametrize(
    ("k1", "k2", "lam"),
    [(20, 6, 0.3), (5, 1, 0.0), (7, 3, 1.0), (3, 3, 0.5)],  # odd k1: round(2.5) = 2, round(3.5) = 4
)
def test_equals_dense_reference_from_features_and_matrices(k1, k2, lam):
    qf, gf, *_ = clustered(seed=k1)
    expected = dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf), k1, k2, lam)
    params = RerankParams(k1, k2, lam)
    got = rerank(qf, gf, params).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    from_matrices = rerank_distances(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf), params).numpy()
    np.testing.assert_allclose(from_matrices, expected, atol=1e-5, rtol=0)
    assert np.abs(got - cosine(qf, gf) ** 2).max() > 0.05  # re-ranking changed the distances


def test_metrics_identical_to_the_reference_and_improved():
    qf, gf, qp, gp, qc, gc = clustered(seed=3, num_q=40, num_g=160)
    expected = dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf))
    want = evaluate_distmat(expected, qp, gp, qc, gc, max_rank=20).to_dict()
    got = evaluate_reranked(qf, gf, qp, gp, qc, gc, max_rank=20).to_dict()
    assert got == want
    plain = evaluate_distmat(cosine(qf, gf), qp, gp, qc, gc, max_rank=20).to_dict()
    assert got["mAP"] != plain["mAP"]


def test_euclidean_metric_matches_reference():
    qf, gf, *_ = clustered(seed=5, num_q=10, num_g=40)

    def euclid(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        return np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0)).astype(
            np.float32
        )

    expected = dense_reference(euclid(qf, gf), euclid(qf, qf), euclid(gf, gf), 6, 2, 0.3)
    got = rerank(qf, gf, RerankParams(6, 2, 0.3), metric="euclidean").numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_fewer_items_than_k1():
    qf, gf, *_ = clustered(seed=7, num_q=3, num_g=6)  # N = 9 < k1 + 1 = 21: every list holds all items
    expected = dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf))
    np.testing.assert_allclose(rerank(qf, gf).numpy(), expected, atol=1e-5, rtol=0)


def test_chunking_does_not_change_the_result(monkeypatch):
    qf, gf, *_ = clustered(seed=11, num_q=20, num_g=70)
    whole = torch.cat(
        [c for _, c in rerank_chunks(FeatureSource(torch.from_numpy(qf), torch.from_numpy(gf)))]
    )
    monkeypatch.setattr("spherereid.evaluation.rerank.reciprocal.PAIR_BUDGET", 7)  # many pair groups
    monkeypatch.setattr("spherereid.evaluation.rerank.reciprocal.SET_BLOCK", 5)
    source = FeatureSource(torch.from_numpy(qf), torch.from_numpy(gf))
    parts = list(rerank_chunks(source, chunk_elements=3 * 90, query_chunk=4))
    assert [a for a, _ in parts] == [0, 3, 6, 9, 12, 15, 18]
    torch.testing.assert_close(torch.cat([c for _, c in parts]), whole, atol=1e-6, rtol=0)


# Hand-worked: query q, gallery a (its true match), b, c, e. Base distances
#          q    a    b    c    e
#     q   0   1.1  1.0  1.5  1.6
#     a        0   2.0  2.1  2.2
#     b             0   0.5  0.6
#     c                  0   0.7
# (e-c 0.7, e-b 0.6). k1 = 2 (lists of self + 2), half sets k1/2 = 1, k2 = 1, lambda = 0.3.
# Neighbour lists: q [q b a], a [a q b], b [b c e], c [c b e], e [e b c].
# R(q) = {q, a} (b's list lacks q), R(a) = {a, q}, R(b) = R(c) = R(e) = {b, c, e}; the half sets only
# add members already present, so R* = R. Column maxima of D**2: q 1.6**2 = 2.56, a 2.2**2 = 4.84.
# V[q] = (1, w) / (1 + w) on (q, a), w = exp(-1.21 / 2.56); V[a] = (u, 1) / (1 + u) on (q, a),
# u = exp(-1.21 / 4.84). q shares nothing with b, c, e: Jaccard 1 there.
# Before: b (1.0) ranks above the true match a (1.1). After: a = 0.354, b = 0.817.
HAND = {
    "q_g": np.array([[1.1, 1.0, 1.5, 1.6]], dtype=np.float32),
    "q_q": np.zeros((1, 1), dtype=np.float32),
    "g_g": np.array(
        [[0, 2.0, 2.1, 2.2], [2.0, 0, 0.5, 0.6], [2.1, 0.5, 0, 0.7], [2.2, 0.6, 0.7, 0]], dtype=np.float32
    ),
}


def test_hand_worked_true_match_becomes_first():
    w, u = math.exp(-1.21 / 2.56), math.exp(-1.21 / 4.84)
    overlap = min(1 / (1 + w), u / (1 + u)) + min(w / (1 + w), 1 / (1 + u))
    expected = [
        0.7 * (1 - overlap / (2 - overlap)) + 0.3 * 1.21 / 2.56,
        0.7 + 0.3 * 1.0 / 2.56,
        0.7 + 0.3 * 2.25 / 2.56,
        0.7 + 0.3 * 2.56 / 2.56,
    ]
    got = rerank_distances(HAND["q_g"], HAND["q_q"], HAND["g_g"], RerankParams(2, 1, 0.3)).numpy()
    np.testing.assert_allclose(got[0], expected, atol=1e-6)
    assert got[0].argmin() == 0 and HAND["q_g"][0].argmin() == 1
    labels = (np.array([1]), np.array([1, 2, 3, 4]), np.array([0]), np.array([1, 1, 1, 1]))
    assert evaluate_distmat(HAND["q_g"], *labels, max_rank=4).mAP == 0.5
    after = evaluate_distmat(got, *labels, max_rank=4)
    assert (after.mAP, after.rank(1)) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, 0.3), "k1 must be an integer >= 1"),
        ((5, 6, 0.3), "k2 must be an integer in 1..5 (at most k1), got 6"),
        ((5, 0, 0.3), "k2 must be an integer in 1..5"),
        ((5, 2, 1.5), "lambda must be in [0, 1], got 1.5"),
        ((5, 2, -0.1), "lambda must be in [0, 1]"),
    ],
)
def test_bad_parameters_name_the_parameter(args, message):
    with pytest.raises(MetricsError) as err:
        RerankParams(*args)
    assert message in str(err.value)
