"""benchmarks/run_cuda_tests.py runs a tests/gpu-style module without pytest (a bare GPU machine)."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# pytest made unimportable, as on a bare GPU machine; then the runner's stand-in on the given folder
STAND_IN = (
    "import sys; sys.modules['pytest'] = None; sys.path.insert(0, sys.argv[1] + '/benchmarks'); "
    "import run_cuda_tests as r; from pathlib import Path; "
    "raise SystemExit(r._run_without_pytest(Path(sys.argv[2])))"
)

SAMPLE = textwrap.dedent(
    """
    import pytest

    pytestmark = [pytest.mark.cuda, pytest.mark.skipif(False, reason="never")]
    SEEN = []

    @pytest.fixture(scope="module")
    def base(tmp_path_factory):
        SEEN.append("base")
        return tmp_path_factory.mktemp("b")

    @pytest.fixture(scope="module")
    def data(base):
        return [1, 2, 3]

    @pytest.mark.parametrize("k", [1, 2])
    def test_param(k, data, tmp_path):
        assert k in data and tmp_path.is_dir() and SEEN == ["base"]
        assert 0.1 + 0.2 == pytest.approx(0.3, rel=1e-9)

    def test_fails():
        assert 1 == 2
    """
)


def test_stand_in_runs_fixtures_parametrize_and_reports_failures(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    script = STAND_IN
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert "PASS test_sample.py::test_param[1]" in lines and "PASS test_sample.py::test_param[2]" in lines
    assert "FAIL test_sample.py::test_fails" in lines and lines[-1] == "1 failed"


def test_a_module_skipped_without_cuda_is_reported_as_skipped(tmp_path):
    (tmp_path / "test_gpu.py").write_text(
        "import pytest\npytestmark = [pytest.mark.skipif(True, reason='needs a CUDA GPU')]\n"
        "def test_x():\n    raise AssertionError\n"
    )
    script = STAND_IN
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.splitlines() == [
        "SKIP test_gpu.py: needs a CUDA GPU",
        "0 failed",
    ]


def test_a_module_that_cannot_import_on_a_bare_machine_is_reported_not_fatal(tmp_path):
    (tmp_path / "test_a_needs_missing.py").write_text("import no_such_module_here\n")
    (tmp_path / "test_b_fine.py").write_text("def test_ok():\n    assert True\n")
    out = subprocess.run(
        [sys.executable, "-c", STAND_IN, str(ROOT), str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("SKIP test_a_needs_missing.py: cannot import (ModuleNotFoundError")
    assert lines[1:] == ["PASS test_b_fine.py::test_ok", "0 failed"]
