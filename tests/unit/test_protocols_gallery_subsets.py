"""protocols.gallery_subsets: per-query gallery subsets (CUHK-SYSU TestG-N), a hand case and bad indices."""

import numpy as np
import pytest

from spherereid.evaluation.metrics import MetricsError, evaluate_gallery_subsets


def test_gallery_subsets_hand_case():
    # Query 0 (pid 1, x=0) sees gallery items [0, 1, 2] at x = 1, 2, 0.5 with pids 2, 1, 3:
    #   order g2 (0.5), g0 (1), g1 (2) -> hit at position 3: top-1/2 miss, AP 1/3.
    # Query 1 (pid 2, x=5) sees [3, 4, 0] at x = 5, 5, 1 with pids 2, 2, 2 (no camera filtering):
    #   g3, g4 tie at 0 (index order), then g0 -> hits at 1, 2, 3: AP 1.
    # Query 2 (pid 4) sees [1]: no true match -> skipped and counted.
    qf = np.array([[0.0], [5.0], [0.0]], dtype=np.float32)
    gf = np.array([[1.0], [2.0], [0.5], [5.0], [5.0]], dtype=np.float32)
    g_pids = np.array([2, 1, 3, 2, 2])
    galleries = [np.array([0, 1, 2]), np.array([3, 4, 0]), np.array([1])]
    res = evaluate_gallery_subsets(qf, gf, [1, 2, 4], g_pids, galleries, max_rank=3, metric="euclidean")
    assert res.cmc.tolist() == [0.5, 0.5, 1.0]
    assert res.mAP == pytest.approx((1 / 3 + 1) / 2)
    assert res.mINP == pytest.approx((1 / 3 + 1) / 2)
    assert (res.num_valid_queries, res.num_queries) == (2, 3)


def test_gallery_subsets_rejects_bad_indices():
    qf = gf = np.zeros((2, 1), dtype=np.float32)
    with pytest.raises(MetricsError, match=r"galleries\[1\]"):
        evaluate_gallery_subsets(qf, gf, [1, 1], [1, 1], [np.array([0]), np.array([2])])
    with pytest.raises(MetricsError, match="galleries has 1 entries"):
        evaluate_gallery_subsets(qf, gf, [1, 1], [1, 1], [np.array([0])])
