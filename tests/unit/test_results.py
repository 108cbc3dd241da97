"""results: the reported keys, to_dict, and the accumulator on a hand-worked query."""

import numpy as np
import pytest
import torch

from spherereid.evaluation.metrics import evaluate_distmat
from spherereid.evaluation.results import REPORTED_KEYS, HitAccumulator


def one_query(dists, g_pids, g_cams, q_pid=1, q_cam=0, max_rank=5):
    d = np.asarray([dists], dtype=np.float32)
    return evaluate_distmat(d, [q_pid], g_pids, [q_cam], g_cams, max_rank=max_rank)


def test_to_dict_keys():
    summary = one_query([0.1, 0.2], [1, 2], [1, 1]).to_dict()
    assert set(summary) == {
        "rank1",
        "rank5",
        "rank10",
        "mAP",
        "mAP_official",
        "mINP",
        "num_valid_queries",
        "num_queries",
        "cmc",
    }
    assert summary["rank1"] == 1.0 and len(summary["cmc"]) == 5


def test_reported_keys_are_the_scalar_keys_of_a_result_in_order():
    summary = one_query([0.1, 0.2], [1, 2], [1, 1]).to_dict()
    assert REPORTED_KEYS == (
        "rank1",
        "rank5",
        "rank10",
        "mAP",
        "mAP_official",
        "mINP",
        "num_valid_queries",
        "num_queries",
    )
    assert [k for k in summary if k != "cmc"] == list(REPORTED_KEYS)


def test_accumulator_on_a_hand_worked_query_and_one_without_a_match():
    # Query 0: true matches at 0-based ranks 0 and 2. AP = (1/1 + 2/3) / 2 = 5/6. Official: hit 1 at the
    # top: (1 + 1) / 2 / 2 = 1/2; hit 2: previous precision 1/2, precision 2/3 -> (1/2 + 2/3) / 2 / 2 =
    # 7/24; total 19/24. INP = 2 / 3. Query 1 has no match: skipped but counted.
    acc = HitAccumulator(max_rank=3)
    acc.add(torch.tensor([0, 0]), torch.tensor([0, 2]), num_rows=2)
    res = acc.result()
    assert res.mAP == pytest.approx(5 / 6) and res.mAP_official == pytest.approx(19 / 24)
    assert res.mINP == pytest.approx(2 / 3)
    assert res.cmc.tolist() == [1.0, 1.0, 1.0] and res.rank(10) == 1.0
    assert (res.num_valid_queries, res.num_queries) == (1, 2)
