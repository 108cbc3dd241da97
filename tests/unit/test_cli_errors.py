"""Entry points turn this package's errors into one line and exit 2; bugs still raise."""

from pathlib import Path

import pytest

from spherereid.cli import main as cli_main
from spherereid.config import ConfigError
from spherereid.entrypoint import run_cli


def _raise(exc):
    def body():
        raise exc

    return body


def test_package_error_becomes_one_line(capsys):
    assert run_cli(_raise(ConfigError("params.yaml: missing key 'loss.scale'"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: params.yaml: missing key 'loss.scale'"


def test_os_error_becomes_one_line(capsys):
    assert run_cli(_raise(FileNotFoundError(2, "No such file or directory", "data/x"))) == 2
    assert "data/x" in capsys.readouterr().err


def test_programming_errors_are_not_hidden():
    with pytest.raises(ZeroDivisionError):
        run_cli(_raise(ZeroDivisionError("bug")))


def test_train_stage_on_a_missing_prepared_dir(tmp_path, capsys):
    from spherereid.stages.train import main

    params = __import__("pathlib").Path(__file__).resolve().parents[2] / "params.yaml"
    code = main(["--params", str(params), "--prepared", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "run the preprocess stage first" in capsys.readouterr().err


def test_console_script_rejects_unknown_command_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["frobnicate"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'frobnicate'" in err and "synthesize" in err


def test_stage_error_classes_work_under_python_dash_m(tmp_path):
    """Run as `python -m`, a stage's own error class lives in __main__: still one line, exit 2."""
    import subprocess
    import sys

    empty = tmp_path / "empty"
    empty.mkdir()
    params = Path(__file__).resolve().parents[2] / "params.yaml"
    args = [
        "--prepared",
        str(empty),
        "--train",
        str(empty),
        "--out",
        str(tmp_path / "o"),
        "--params",
        str(params),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "spherereid.stages.evaluate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in proc.stderr
