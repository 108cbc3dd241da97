"""protocols.cuhk03_classic: the CUHK03 classic (single-gallery-shot) protocol on a hand-worked case."""

import numpy as np
import pytest

from spherereid.evaluation.metrics import MetricsError, evaluate_cuhk03_classic

# Four images on a line (euclidean metric): index: pid, camera, position
#   A0: 1, c0, x=0     A1: 1, c1, x=2     B0: 2, c0, x=3     B1: 2, c1, x=1
X = np.array([[0.0], [2.0], [3.0], [1.0]], dtype=np.float32)
PIDS, CAMS = np.array([1, 1, 2, 2]), np.array([0, 1, 0, 1])


def classic(**kwargs):
    return evaluate_cuhk03_classic(X, X, PIDS, PIDS, CAMS, CAMS, metric="euclidean", max_rank=3, **kwargs)


def test_cuhk03_classic_expected_values():
    # Query A0: visible A1 (d 2), B0 (d 3), B1 (d 1). One pid-2 image is drawn: B0 -> A1 first (hit at
    #   rank 1); B1 -> B1 first (rank 2). P(rank-1) = 1/2.
    # Query A1: visible A0 (2), B0 (1), B1 (1): either pid-2 image beats A0 -> rank 2 always.
    # Query B0: visible B1 (2), A0 (3), A1 (1): A0 drawn -> rank 1, A1 drawn -> rank 2. P = 1/2.
    # Query B1: visible B0 (2), A0 (1), A1 (1): rank 2 always.
    # Expected CMC = [1/4, 1, 1]. Unsampled ranking: hits at positions 2, 3, 2, 3 ->
    # mAP = (1/2 + 1/3 + 1/2 + 1/3) / 4 = 5/12.
    res = classic(repeats=4000, seed=1)
    assert res.cmc[0] == pytest.approx(0.25, abs=0.02)  # std of the estimate ~0.003
    assert res.cmc[1:].tolist() == [1.0, 1.0]
    assert res.mAP == pytest.approx(5 / 12)
    assert (res.num_valid_queries, res.num_queries) == (4, 4)


def test_cuhk03_classic_is_reproducible_with_a_seed():
    a, b = classic(repeats=10, seed=3), classic(repeats=10, seed=3)
    assert a.to_dict() == b.to_dict()
    rank1 = {classic(repeats=10, seed=s).cmc[0] for s in range(6)}
    assert len(rank1) > 1  # the draw depends on the seed


def test_cuhk03_classic_skips_queries_without_cross_camera_match():
    # A third identity seen only in camera 0: its query has no true match.
    x = np.vstack([X, [[9.0]]]).astype(np.float32)
    pids, cams = np.append(PIDS, 3), np.append(CAMS, 0)
    res = evaluate_cuhk03_classic(x, x, pids, pids, cams, cams, metric="euclidean", max_rank=3, seed=0)
    assert (res.num_valid_queries, res.num_queries) == (4, 5)
    with pytest.raises(MetricsError, match="repeats"):
        classic(repeats=0)
