"""Progress bars come from spherereid.progress alone: tqdm when installed, else a silent stand-in that
serves every way the package uses a bar (iterate, count with update, as a context manager)."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRESS = ROOT / "model" / "spherereid" / "progress.py"


def _imports_tqdm(path: Path) -> list[int]:
    """Lines of `path` that import tqdm (or a tqdm submodule) directly."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "tqdm" for a in node.names):
            lines.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and not node.level
            and (node.module or "").split(".")[0] == "tqdm"
        ):
            lines.append(node.lineno)
    return lines


def test_no_module_but_progress_imports_tqdm():
    files = [p for d in ("model/spherereid", "components", "pipeline") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 100 and _imports_tqdm(PROGRESS)
    found = {f"{p.relative_to(ROOT)}:{n}" for p in files if p != PROGRESS for n in _imports_tqdm(p)}
    assert found == set(), "import tqdm from spherereid.progress instead"


def test_the_scan_finds_a_direct_import(tmp_path):
    (tmp_path / "m.py").write_text(
        "import os\nfrom tqdm import tqdm\nimport tqdm.auto\nfrom .progress import tqdm\n"
    )
    assert _imports_tqdm(tmp_path / "m.py") == [2, 3]


def test_the_stand_in_without_tqdm_iterates_counts_and_closes():
    script = textwrap.dedent(
        """
        import sys

        sys.modules["tqdm"] = None  # "import tqdm" now raises ImportError, as on a bare GPU image
        from spherereid.progress import tqdm

        assert tqdm.__module__ == "spherereid.progress"
        bar = tqdm([1, 2, 3], desc="it", unit="x", disable=None, leave=False)
        assert list(bar) == [1, 2, 3] and len(bar) == 3
        bar.set_postfix(loss=1.0)
        with tqdm(total=5, desc="count", unit="img") as counted:
            counted.update(2)
            counted.update(3)
        assert counted.n == 5 and len(counted) == 5
        alone = tqdm(total=2)
        alone.update()
        alone.close()
        assert alone.n == 1
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
