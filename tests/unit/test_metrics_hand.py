"""Standard-protocol metrics on hand-built cases; expected values worked out in the comments."""

import numpy as np
import pytest

from spherereid.evaluation.metrics import MetricsError, evaluate_distmat, top_k


def one_query(dists, g_pids, g_cams, q_pid=1, q_cam=0, max_rank=5):
    d = np.asarray([dists], dtype=np.float32)
    return evaluate_distmat(d, [q_pid], g_pids, [q_cam], g_cams, max_rank=max_rank)


def test_five_item_gallery_both_map_definitions():
    # query pid 1, camera 0. Gallery (index: pid, camera, distance):
    #   g0: 2, c1, 0.10   negative
    #   g1: 1, c1, 0.20   true match
    #   g2: 3, c0, 0.30   negative
    #   g3: 1, c2, 0.40   true match
    #   g4: 1, c0, 0.05   same id + same camera -> removed (although nearest)
    # Visible ranking: g0, g1, g2, g3 -> hits at positions 2 and 4 (1-based).
    # AP (torchreid)   = (1/2 + 2/4) / 2 = 0.5
    # AP (official)    = hit 1: recall 0 -> 1/2, precision 1/2, previous position's precision 0/1 = 0
    #                      -> 1/2 * (0 + 1/2) / 2 = 1/8
    #                    hit 2: recall 1/2 -> 1, precision 2/4, previous position's precision 1/3
    #                      -> 1/2 * (1/3 + 1/2) / 2 = 5/24;   total 3/24 + 5/24 = 1/3
    # INP = 2 hits / position of last hit 4 = 0.5; CMC = [0, 1, 1, 1, 1]
    res = one_query([0.10, 0.20, 0.30, 0.40, 0.05], [2, 1, 3, 1, 1], [1, 1, 0, 2, 0])
    assert res.cmc.tolist() == [0, 1, 1, 1, 1]
    assert res.mAP == pytest.approx(0.5)
    assert res.mAP_official == pytest.approx(1 / 3)
    assert res.mINP == pytest.approx(0.5)
    assert (res.num_valid_queries, res.num_queries) == (1, 1)


def test_official_ap_with_hit_at_top():
    # Visible ranking: hit, negative, hit (g2 nearest, then g0, then g1).
    # AP = (1/1 + 2/3) / 2 = 5/6.
    # official: hit 1 at position 1: precision 1, previous precision 1 (start) -> 1/2 * (1 + 1)/2 = 1/2
    #           hit 2 at position 3: precision 2/3, previous (position 2) 1/2 -> 1/2 * (1/2 + 2/3)/2 = 7/24
    #           total 19/24
    res = one_query([0.2, 0.3, 0.1], [9, 1, 1], [0, 2, 1])
    assert res.mAP == pytest.approx(5 / 6)
    assert res.mAP_official == pytest.approx(19 / 24)
    assert res.mINP == pytest.approx(2 / 3)
    assert res.cmc[0] == 1.0


def test_query_with_matches_only_in_own_camera_is_skipped_and_counted():
    # q0 (pid 5, cam 0): its only gallery match g1 is in camera 0 -> no true match, skipped.
    # q1 (pid 7, cam 1): g2 (pid 7, cam 0) at rank 2 behind g0 -> AP 1/2, rank-1 miss.
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.5, 0.2]], dtype=np.float32)
    res = evaluate_distmat(dist, [5, 7], [3, 5, 7], [0, 1], [1, 0, 0], max_rank=3)
    assert (res.num_valid_queries, res.num_queries) == (1, 2)
    assert res.cmc.tolist() == [0, 1, 1]
    assert res.mAP == pytest.approx(0.5)
    # averages are over valid queries; official AP of q1: one hit, (previous precision 0 + 1/2) / 2 = 1/4
    assert res.mAP_official == pytest.approx(0.25)


def test_all_junk_gallery_raises():
    dist = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(MetricsError, match="no valid query"):
        evaluate_distmat(dist, [1, 2], [-1, -1, -1], [0, 0], [1, 1, 1])


def test_junk_is_ignored_not_counted_as_negative():
    # g0 is junk (pid -1) and nearest; g1 (pid 1, cam 1) must still be rank 1.
    res = one_query([0.0, 0.1, 0.2], [-1, 1, 4], [1, 1, 1])
    assert res.cmc[0] == 1.0 and res.mAP == pytest.approx(1.0) and res.mINP == pytest.approx(1.0)


def test_distractor_ranked_first_is_a_negative():
    # g0 is a distractor (pid 0) nearest; the true match g1 is second: rank-1 0, AP 1/2.
    res = one_query([0.1, 0.2, 0.3], [0, 1, 0], [1, 1, 1])
    assert res.cmc.tolist()[:2] == [0, 1]
    assert res.mAP == pytest.approx(0.5)


def test_ties_broken_by_gallery_index():
    # All three at distance 0.5: order g0, g1, g2. True match at g1 -> position 2; at g0 -> position 1.
    res = one_query([0.5, 0.5, 0.5], [2, 1, 3], [1, 1, 1])
    assert res.cmc.tolist()[:2] == [0, 1] and res.mAP == pytest.approx(0.5)
    res = one_query([0.5, 0.5, 0.5], [1, 2, 3], [1, 1, 1])
    assert res.cmc[0] == 1.0 and res.mAP == pytest.approx(1.0)
    # -0.0 and 0.0 are the same distance: the index decides.
    res = one_query([0.0, -0.0], [2, 1], [1, 1])
    assert res.cmc[0] == 0.0


def test_rank10_reported_even_when_max_rank_is_smaller():
    # hit at position 7 of 10 visible items; max_rank 3 -> cmc has 3 entries, rank-10 still known.
    d = np.arange(10, dtype=np.float32)
    pids = [9] * 10
    pids[6] = 1
    res = one_query(d, pids, [1] * 10, max_rank=3)
    summary = res.to_dict()
    assert summary["cmc"] == [0.0, 0.0, 0.0]
    assert (summary["rank1"], summary["rank5"], summary["rank10"]) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q_pids": [1, 2, 3]}, "q_pids has 3 entries"),
        ({"g_camids": [0]}, "g_camids has 1 entries"),
        ({"distmat": np.full((2, 3), np.nan, dtype=np.float32)}, "NaN"),
        ({"distmat": np.zeros(3)}, "2-D"),
        ({"max_rank": 0}, "max_rank"),
    ],
)
def test_invalid_input(kwargs, message):
    args = {
        "distmat": np.zeros((2, 3), dtype=np.float32),
        "q_pids": [1, 2],
        "g_pids": [1, 2, 3],
        "q_camids": [0, 0],
        "g_camids": [1, 1, 1],
        "max_rank": 5,
    }
    args.update(kwargs)
    with pytest.raises(MetricsError, match=message):
        evaluate_distmat(**args)


def test_top_k_tie_rule():
    # Euclidean 1-D: query at 0; gallery at 1, -1, 2, 1, 0 -> distances 1, 1, 2, 1, 0.
    # Order: g4 (0), then the three at 1 by index g0, g1, g3, then g2.
    qf = np.zeros((1, 1), dtype=np.float32)
    gf = np.array([[1], [-1], [2], [1], [0]], dtype=np.float32)
    idx, dist = top_k(qf, gf, 4, metric="euclidean")
    assert idx.tolist() == [[4, 0, 1, 3]]
    assert dist.tolist() == [[0.0, 1.0, 1.0, 1.0]]
    with pytest.raises(MetricsError, match="k must be"):
        top_k(qf, gf, 6, metric="euclidean")
