"""The fast evaluator against simple independent implementations on random cases (ties included)."""

import numpy as np
import pytest

from spherereid.evaluation import ranking
from spherereid.evaluation.distances import pairwise_distance
from spherereid.evaluation.metrics import evaluate_distmat, evaluate_features, top_k


def matlab_compute_ap(good, junk, index):
    """Line-by-line port of compute_AP.m (official Market-1501 code): index is the full ranking."""
    ngood = len(good)
    old_recall, old_precision, ap = 0.0, 1.0, 0.0
    intersect_size, j, good_now = 0, 0, 0
    for n in index:
        flag = n in good
        if flag:
            good_now += 1
        if n in junk:
            continue
        if flag:
            intersect_size += 1
        recall = intersect_size / ngood
        precision = intersect_size / (j + 1)
        ap += (recall - old_recall) * ((old_precision + precision) / 2)
        old_recall, old_precision = recall, precision
        j += 1
        if good_now == ngood:
            break
    return ap


def reference(dist, qp, gp, qc, gc, max_rank):
    """Toolkit-style evaluation: stable argsort per query, filter, then walk the list."""
    cmcs, aps, aps_official, inps = [], [], [], []
    for i in range(len(qp)):
        order = np.argsort(dist[i], kind="stable")
        junk_mask = (gp == -1) | ((gp == qp[i]) & (gc == qc[i]))
        keep = ~junk_mask[order]
        matches = gp[order][keep] == qp[i]
        if not matches.any():
            continue
        ranks = np.flatnonzero(matches)
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / (ranks + 1)))
        good = set(np.flatnonzero((gp == qp[i]) & (gc != qc[i])).tolist())
        aps_official.append(matlab_compute_ap(good, set(np.flatnonzero(junk_mask).tolist()), order.tolist()))
        inps.append(len(ranks) / (ranks[-1] + 1))
        cmc = np.zeros(max_rank)
        cmc[ranks[0] :] = 1
        cmcs.append(cmc)
    if not aps:
        return None, None, None, None, 0
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(aps_official), np.mean(inps), len(aps)


def random_case(rng, q, g, ties):
    qp = rng.integers(-1, 8, q)
    gp = rng.integers(-1, 8, g)
    qc, gc = rng.integers(0, 3, q), rng.integers(0, 3, g)
    if ties:
        dist = rng.integers(0, 4, (q, g)).astype(np.float32)
    else:
        dist = rng.random((q, g), dtype=np.float32)
    return dist, qp, gp, qc, gc


def assert_matches_reference(res, dist, qp, gp, qc, gc, max_rank):
    cmc, ap, ap_off, inp, valid = reference(dist, qp, gp, qc, gc, max_rank)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)
    assert res.mAP == pytest.approx(ap, abs=1e-12)
    assert res.mAP_official == pytest.approx(ap_off, abs=1e-12)
    assert res.mINP == pytest.approx(inp, abs=1e-12)
    assert (res.num_valid_queries, res.num_queries) == (valid, len(qp))


@pytest.mark.parametrize("path", ["auto", "sort", "binned", "binned-3-bins"])
def test_distmat_matches_reference_on_random_cases(path, monkeypatch):
    # "sort": every row through sort_candidates; "binned": every row through binned_ranks;
    # 3 bins put many items in each true match's bin, exercising the exact in-bin resolution.
    if path == "sort":
        monkeypatch.setattr(ranking, "HARD_ROW_DIVISOR", 0)
    elif path.startswith("binned"):
        monkeypatch.setattr(ranking, "HARD_ROW_DIVISOR", 1e9)
        if path.endswith("3-bins"):
            monkeypatch.setattr(ranking, "BINS", 3)
    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(40):
        q, g = int(rng.integers(1, 30)), int(rng.integers(1, 70))
        case = random_case(rng, q, g, ties=trial % 2 == 0)
        if reference(*case, 5)[4] == 0:
            continue
        chunk = int(rng.integers(1, 8))  # rarely divides q
        res = evaluate_distmat(*case, max_rank=5, query_chunk=chunk)
        assert_matches_reference(res, *case, max_rank=5)
        checked += 1
    assert checked > 25


def test_hybrid_chunk_with_easy_and_hard_rows(monkeypatch):
    # Row 0: true match nearest (1 candidate, sorted); row 1: true match last (all candidates, binned).
    monkeypatch.setattr(ranking, "HARD_ROW_DIVISOR", 4)
    g = 64
    dist = np.tile(np.linspace(0.0, 1.0, g, dtype=np.float32), (2, 1))
    gp = np.arange(100, 100 + g)
    gp[0], gp[-1] = 1, 2
    qp, qc, gc = np.array([1, 2]), np.zeros(2, int), np.ones(g, int)
    res = evaluate_distmat(dist, qp, gp, qc, gc, max_rank=g)
    # query 0: rank 1 -> AP 1; query 1: position 64 -> AP 1/64
    assert res.mAP == pytest.approx((1 + 1 / 64) / 2)
    assert_matches_reference(res, dist, qp, gp, qc, gc, max_rank=g)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_features_path_equals_distmat_path(metric):
    # Small-integer features: dot products are exact, so chunking cannot change a distance, and ties abound.
    rng = np.random.default_rng(3)
    qf = rng.integers(-2, 3, (23, 4)).astype(np.float32)
    gf = rng.integers(-2, 3, (57, 4)).astype(np.float32)
    qp, gp = rng.integers(0, 6, 23), rng.integers(-1, 6, 57)
    qc, gc = rng.integers(0, 2, 23), rng.integers(0, 2, 57)
    dist = pairwise_distance(qf, gf, metric).numpy()
    full = evaluate_distmat(dist, qp, gp, qc, gc, max_rank=10)
    for chunk in (1, 5, 1024):
        res = evaluate_features(qf, gf, qp, gp, qc, gc, metric=metric, max_rank=10, query_chunk=chunk)
        got, want = res.to_dict(), full.to_dict()
        assert got.pop("cmc") == want.pop("cmc")
        assert got == pytest.approx(want, abs=1e-12)  # per-chunk sums: only rounding may differ
    assert_matches_reference(full, dist, qp, gp, qc, gc, max_rank=10)


def test_top_k_matches_stable_argsort():
    rng = np.random.default_rng(5)
    qf = rng.integers(-1, 2, (13, 3)).astype(np.float32)
    gf = rng.integers(-1, 2, (40, 3)).astype(np.float32)
    dist = pairwise_distance(qf, gf, "euclidean").numpy()
    want = np.argsort(dist, axis=1, kind="stable")[:, :9]
    idx, d = top_k(qf, gf, 9, metric="euclidean", query_chunk=4)
    assert idx.dtype == np.int64 and idx.shape == (13, 9)
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(d, np.take_along_axis(dist, want, axis=1))
