"""python -m spherereid.evaluation.features_cli: JSON output, one-line errors (exit 2) on bad input."""

import json

import numpy as np
import pytest

from spherereid.evaluation.features_cli import main

# Two queries, three gallery items, 2-D features, cosine metric:
#   q0: pid 1, cam 0, feature (1, 0); q1: pid 2, cam 0, feature (0, 1)
#   g0: pid 2, cam 1, (1, 0.1)   g1: pid 1, cam 1, (0.9, 0.5)   g2: pid 2, cam 1, (0.1, 1)
# q0 ranks g0 (cos 0.995) before g1 (cos 0.874): hit at position 2 -> AP 1/2, rank-1 miss.
# q1 ranks g2 (0.995), g1 (0.486), g0 (0.0995): hits at 1 and 3 -> AP (1 + 2/3)/2 = 5/6, rank-1 hit.
GOOD = {
    "qf": np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
    "gf": np.array([[1.0, 0.1], [0.9, 0.5], [0.1, 1.0]], dtype=np.float32),
    "q_pids": np.array([1, 2]),
    "g_pids": np.array([2, 1, 2]),
    "q_camids": np.array([0, 0]),
    "g_camids": np.array([1, 1, 1]),
}


def write(tmp_path, **changes):
    arrays = {**GOOD, **changes}
    path = tmp_path / "features.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_correct_run_prints_json_and_writes_out(tmp_path, capsys):
    out = tmp_path / "sub" / "metrics.json"
    assert main([str(write(tmp_path)), "--max-rank", "3", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {
        "rank1",
        "rank5",
        "rank10",
        "mAP",
        "mAP_official",
        "mINP",
        "num_valid_queries",
        "num_queries",
    }
    assert printed["rank1"] == 0.5 and printed["rank5"] == 1.0
    assert printed["mAP"] == pytest.approx((1 / 2 + 5 / 6) / 2)
    assert (printed["num_valid_queries"], printed["num_queries"]) == (2, 2)
    saved = json.loads(out.read_text())
    assert saved["cmc"] == [0.5, 1.0, 1.0]
    assert saved["mAP"] == printed["mAP"]


def test_euclidean_metric_option(tmp_path, capsys):
    assert main([str(write(tmp_path)), "--metric", "euclidean", "--query-chunk", "1"]) == 0
    # euclidean: q0 -> g0 (0.1) before g1 (0.51): same ranking as cosine here.
    assert json.loads(capsys.readouterr().out)["rank1"] == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"g_camids": None}, "missing array(s) g_camids"),
        ({"q_pids": np.array([1, 2, 3])}, "q_pids has 3 entries but there are 2 queries"),
        ({"gf": np.ones((3, 5), dtype=np.float32)}, "feature dimensions differ"),
        ({"qf": np.array([[np.nan, 0.0], [0.0, 1.0]], dtype=np.float32)}, "qf contains NaN"),
        ({"g_pids": np.array([7, 8, 9])}, "no valid query"),
        ({"q_pids": np.array([1.5, 2.0])}, "q_pids: expected integer labels"),
    ],
)
def test_malformed_input_gives_one_line_error(tmp_path, capsys, changes, message):
    assert main([str(write(tmp_path, **changes))]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert message in captured.err


def test_missing_and_unreadable_files(tmp_path, capsys):
    assert main([str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
