"""The cross-evaluate stage's inputs and the matrix stage's collection of its results (no training)."""

from __future__ import annotations

import json

import pytest

from spherereid.config import EvaluateConfig
from spherereid.experiments.matrix import MatrixError
from spherereid.experiments.matrix_cli import collect, main
from spherereid.stages import cross_evaluate


def _result(runs, train, test, rank1, mAP):  # noqa: N803
    (runs / train).mkdir(parents=True, exist_ok=True)
    body = {
        "train": train,
        "test": test,
        "metrics": {"rank1": rank1, "mAP": mAP, "mAP_official": mAP, "mINP": 0.1},
    }
    (runs / train / f"{test}.json").write_text(json.dumps(body))


def _write_own_evaluation(ev):
    """The evaluate stage's chain.json and metrics.json (rank-1 0.7, mAP 0.5) in `ev`."""
    chain = {
        "stored_size": [36, 18],
        "input_size": [32, 16],
        "mean": [0.5] * 3,
        "std": [0.2] * 3,
        "flip": True,
    }
    (ev / "chain.json").write_text(json.dumps(chain))
    (ev / "metrics.json").write_text(json.dumps({"rank1": 0.7, "mAP": 0.5, "protocol": {"name": "market"}}))


def test_collect_and_write_a_2x2_matrix(tmp_path):
    runs = tmp_path / "runs"
    for train, test, r1 in (("a", "a", 0.9), ("a", "b", 0.2), ("b", "a", 0.3), ("b", "b", 0.8)):
        _result(runs, train, test, r1, r1 / 2)
    assert collect(runs)[("a", "b")]["rank1"] == 0.2
    assert main(["--runs", str(runs), "--out", str(tmp_path / "cross")]) == 0
    matrix = json.loads((tmp_path / "cross" / "matrix.json").read_text())
    assert matrix["b"]["a"]["mAP"] == pytest.approx(0.15) and matrix["a"]["a"]["rank1"] == 0.9
    assert "| a | **90.00%** | 20.00% |" in (tmp_path / "cross" / "matrix.md").read_text()


def test_collect_names_a_bad_result_file(tmp_path):
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "b.json").write_text("{}")
    with pytest.raises(MatrixError, match="b.json: not a cross-evaluation result"):
        collect(tmp_path / "runs")
    with pytest.raises(MatrixError, match="no cross-evaluation results"):
        collect(tmp_path / "empty")


def test_self_pair_reuses_the_evaluate_stage_metrics_and_missing_chain_is_named(tmp_path):
    ev = tmp_path / "eval"
    ev.mkdir()
    with pytest.raises(cross_evaluate.CrossEvaluateError, match="chain.json: cannot read it"):
        cross_evaluate.run(
            model="a",
            train_dir=tmp_path,
            eval_dir=ev,
            prepared_root=tmp_path,
            tests=["a"],
            out_dir=tmp_path / "out",
            evaluate=EvaluateConfig(),
        )
    _write_own_evaluation(ev)
    res = cross_evaluate.run(
        model="a",
        train_dir=tmp_path,
        eval_dir=ev,
        prepared_root=tmp_path,
        tests=["a"],
        out_dir=tmp_path / "out",
        evaluate=EvaluateConfig(),
    )
    assert res["a"]["metrics"] == {"rank1": 0.7, "mAP": 0.5}
    assert json.loads((tmp_path / "out" / "a.json").read_text())["test"] == "a"


def test_the_own_dataset_row_loads_no_network_code(tmp_path):
    """With only its own dataset in `datasets` (the quickstart) the stage copies evaluate's metrics: it must
    not import torch and torchvision (about 5 s of imports per main job), only to evaluate other sets."""
    import subprocess
    import sys
    import textwrap

    ev = tmp_path / "eval"
    ev.mkdir()
    _write_own_evaluation(ev)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path

        for name in ("torch", "torchvision"):
            sys.modules[name] = None  # "import torch" now raises ImportError
        from spherereid.config import EvaluateConfig
        from spherereid.stages import cross_evaluate

        root = Path({str(tmp_path)!r})
        res = cross_evaluate.run(model="a", train_dir=root, eval_dir=root / "eval", prepared_root=root,
                                 tests=["a"], out_dir=root / "out", evaluate=EvaluateConfig())
        print(res["a"]["metrics"])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "{'rank1': 0.7, 'mAP': 0.5}"
