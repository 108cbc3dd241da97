"""Cross-dataset matrix assembly on hand-made results: JSON layout, Markdown tables, heatmap, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spherereid.experiments.matrix import MatrixError, assemble, to_markdown, values, write_matrix


def _m(rank1, mAP):  # noqa: N803
    return {"rank1": rank1, "mAP": mAP, "mAP_official": mAP - 0.01, "mINP": mAP / 2, "num_queries": 10}


RESULTS = {
    ("synthetic", "synthetic"): _m(0.9, 0.8),
    ("synthetic", "synthetic_b"): _m(0.4, 0.3),
    ("synthetic_b", "synthetic_b"): _m(0.85, 0.75),
    ("synthetic_b", "synthetic"): _m(0.5, 0.25),
}


def test_assemble_nests_train_then_test_and_keeps_only_the_metrics():
    matrix = assemble(RESULTS)
    assert matrix["synthetic"]["synthetic_b"] == {
        "rank1": 0.4,
        "mAP": 0.3,
        "mAP_official": 0.29,
        "mINP": 0.15,
    }
    assert sorted(matrix) == ["synthetic", "synthetic_b"] and sorted(matrix["synthetic_b"]) == sorted(matrix)
    np.testing.assert_allclose(values(matrix, "mAP"), [[0.8, 0.3], [0.25, 0.75]])


def test_markdown_has_one_table_per_metric_with_the_diagonal_bold():
    md = to_markdown(assemble(RESULTS))
    assert "| train \\ test | synthetic | synthetic_b |" in md
    assert "| synthetic | **90.00%** | 40.00% |" in md and "| synthetic_b | 50.00% | **85.00%** |" in md
    assert "| synthetic | **80.00%** | 30.00% |" in md and "| synthetic_b | 25.00% | **75.00%** |" in md


def test_a_missing_pair_is_shown_not_dropped(tmp_path):
    partial = {k: v for k, v in RESULTS.items() if k != ("synthetic_b", "synthetic")}
    paths = write_matrix(partial, tmp_path)
    assert "| synthetic_b | missing | **85.00%** |" in paths["md"].read_text()
    assert np.isnan(values(assemble(partial), "rank1")[1, 0])
    assert paths["png"].stat().st_size > 0


def test_write_matrix_files(tmp_path):
    paths = write_matrix(RESULTS, tmp_path / "cross")
    saved = json.loads(paths["json"].read_text())
    assert saved == assemble(RESULTS) and saved["synthetic_b"]["synthetic"]["mAP"] == 0.25
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"rank1": 0.5}, "synthetic -> other: metric 'mAP' missing"),
        ({**_m(0.5, 0.5), "mAP": float("nan")}, "synthetic -> other: metric 'mAP' is nan, not a number"),
        ({**_m(0.5, 0.5), "rank1": "high"}, "metric 'rank1' is 'high', not a number"),
    ],
)
def test_bad_results_name_the_pair_and_metric(metrics, message):
    with pytest.raises(MatrixError, match=message):
        assemble({("synthetic", "other"): metrics})
