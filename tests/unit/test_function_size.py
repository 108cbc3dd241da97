"""Functions fit on a screen: none in the library over 50 lines, `fit` under 50, stage run()s under 35."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "model" / "spherereid"


def _functions(root: Path) -> dict[str, int]:
    """'path:name@line' -> length in lines (decorators excluded) of every function under `root`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{path.relative_to(root).as_posix()}:{node.name}@{node.lineno}"
                out[key] = node.end_lineno - node.lineno + 1
    return out


def test_no_library_function_is_over_50_lines():
    sizes = _functions(PKG)
    assert len(sizes) > 300
    assert {k: v for k, v in sizes.items() if v > 50} == {}


def test_fit_is_under_50_lines_and_every_stage_run_under_35():
    sizes = _functions(PKG)
    (fit,) = [v for k, v in sizes.items() if k.startswith("training/trainer.py:fit@")]
    assert fit < 50
    runs = {k: v for k, v in sizes.items() if k.startswith("stages/") and ":run@" in k}
    assert len(runs) >= 5
    assert {k: v for k, v in runs.items() if v >= 35} == {}


def test_the_measure_counts_a_long_function(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * 70 + "\n\ndef g():\n    return 1\n")
    assert _functions(tmp_path) == {"m.py:f@1": 71, "m.py:g@74": 2}


def test_fit_reads_on_one_screen_under_35_lines():
    """The training recipe (set up, resume, epochs, save, clean up) reads top to bottom."""
    (fit,) = [v for k, v in _functions(PKG).items() if k.startswith("training/trainer.py:fit@")]
    assert fit < 35
