"""evaluate-features --rerank: the JSON metrics of the re-ranked distances; one-line errors naming the flag;
the evaluate.rerank_* params checks."""

import json

import numpy as np
import pytest
from fixtures.rerank_reference import clustered, cosine, dense_reference

from spherereid.config import ConfigError, EvaluateConfig
from spherereid.evaluation.features_cli import main
from spherereid.evaluation.metrics import evaluate_distmat


def write(tmp_path, qf, gf, qp, gp, qc, gc):
    path = tmp_path / "features.npz"
    np.savez(path, qf=qf, gf=gf, q_pids=qp, g_pids=gp, q_camids=qc, g_camids=gc)
    return path


def test_rerank_prints_the_metrics_of_the_reference_distances(tmp_path, capsys):
    qf, gf, qp, gp, qc, gc = clustered(seed=2, num_q=20, num_g=80)
    path = write(tmp_path, qf, gf, qp, gp, qc, gc)
    out = tmp_path / "m.json"
    argv = [str(path), "--rerank", "--k1", "7", "--k2", "3", "--lambda", "0.2", "--max-rank", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf), 7, 3, 0.2)
    want = evaluate_distmat(expected, qp, gp, qc, gc, max_rank=5).to_dict()
    assert printed == {k: want[k] for k in printed}
    assert json.loads(out.read_text())["cmc"] == want["cmc"]
    assert main([str(path), "--max-rank", "5"]) == 0  # without --rerank: the plain metrics differ
    assert json.loads(capsys.readouterr().out)["mAP"] != printed["mAP"]


def test_rerank_defaults_are_the_papers(tmp_path, capsys):
    qf, gf, qp, gp, qc, gc = clustered(seed=4, num_q=12, num_g=50)
    assert main([str(write(tmp_path, qf, gf, qp, gp, qc, gc)), "--rerank"]) == 0
    expected = dense_reference(cosine(qf, gf), cosine(qf, qf), cosine(gf, gf), 20, 6, 0.3)
    assert json.loads(capsys.readouterr().out)["mAP"] == evaluate_distmat(expected, qp, gp, qc, gc).mAP


def test_hand_case_through_the_cli(tmp_path, capsys):
    # 1-D features, euclidean: q at 0, its true match a at -1.1, b at 1.0, c at 1.4, e at 1.6. As in the
    # hand-worked case of test_rerank (k1 = 2): b ranks first, but b's two nearest are c and e, so
    # R(q) = R(a) = {q, a} and q shares nothing with b, c, e: after re-ranking a is first.
    qf = np.array([[0.0]], dtype=np.float32)
    gf = np.array([[-1.1], [1.0], [1.4], [1.6]], dtype=np.float32)
    path = write(tmp_path, qf, gf, np.array([1]), np.array([1, 2, 3, 4]), np.array([0]), np.ones(4, int))
    assert main([str(path), "--metric", "euclidean", "--max-rank", "4"]) == 0
    assert json.loads(capsys.readouterr().out)["rank1"] == 0.0
    assert (
        main([str(path), "--metric", "euclidean", "--max-rank", "4", "--rerank", "--k1", "2", "--k2", "1"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["rank1"] == 1.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rerank", "--k1", "0"], "--k1 must be an integer >= 1"),
        (["--rerank", "--k1", "5", "--k2", "6"], "--k2 must be an integer in 1..5 (at most --k1), got 6"),
        (["--rerank", "--lambda", "1.5"], "--lambda must be in [0, 1], got 1.5"),
        (["--k1", "5"], "--k1 only apply with --rerank"),
    ],
)
def test_bad_rerank_flags_are_one_line_errors_naming_the_flag(tmp_path, capsys, flags, message):
    path = write(tmp_path, *clustered(seed=1, num_q=3, num_g=6))
    assert main([str(path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"rerank_k1": 0}, "evaluate.rerank_k1"),
        ({"rerank_k1": 5, "rerank_k2": 6}, "evaluate.rerank_k2"),
        ({"rerank_lambda": -0.5}, "evaluate.rerank_lambda"),
    ],
)
def test_bad_rerank_params_name_the_key(values, key):
    with pytest.raises(ConfigError, match=key):
        EvaluateConfig(**values)
