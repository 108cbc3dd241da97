"""The code the documentation names exists: every repository path (`model/...`, `tests/...`, `scripts/...`,
...), every source file named in a code span (`device.py`, `stages/precision_check.py`, a test as
`test_x.py::test_name`, abbreviated with "..." or not) and every `spherereid.<module>[.<name>]` in README.md,
DEVELOPERS.md and docs/*.md. Generated paths (data/, outputs/) and placeholders (`<stage>`) are not code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("model", "tests", "scripts", "benchmarks", "components", "pipeline", "docs")
SOURCE_SUFFIXES = (".py", ".sh")

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)((?:(?!\1).)+?)\1", re.S)
# a repository path: a source folder, then a file (with its suffix) or a folder (with its "/")
REPO_PATH = re.compile(
    rf"(?<![\w/.<>-])((?:{'|'.join(SOURCE_DIRS)})/[\w./-]*(?:\.\w+|/))(?:::(\w+))?(?![\w<>*{{])"
)
SPAN_FILE = re.compile(r"^([\w./-]*\w(?:\.py|\.sh))(?:::(\w+)(?:\.\.\.)?)?$")
DOTTED = re.compile(r"(?<![\w/.:-])spherereid(?:\.[A-Za-z_]\w*)+")
NOT_MODULES = {"yaml", "yml", "json", "md", "db"}  # spherereid.yaml: a compiled pipeline file


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]


def source_files(root: Path = ROOT) -> list[str]:
    """Paths (relative, posix) of the files and folders under the source folders of `root`."""
    out = []
    for folder in SOURCE_DIRS:
        for path in (root / folder).rglob("*"):
            if "__pycache__" not in path.parts:
                rel = path.relative_to(root).as_posix()
                out.append(rel + "/" if path.is_dir() else rel)
    return out


def _test_named(path: Path, name: str | None) -> bool:
    """No test named, or `path` defines a function whose name starts with `name` (docs abbreviate)."""
    return name is None or re.search(rf"^\s*(?:async\s+)?def {name}", path.read_text(), re.M) is not None


def _module_name_exists(dotted: str, pkg: Path) -> bool:
    """spherereid.a.b[.name]: the longest module prefix exists and defines, assigns or imports the name."""
    parts, base = dotted.split(".")[1:], pkg
    while parts and ((base / parts[0]).is_dir() or (base / f"{parts[0]}.py").is_file()):
        base, parts = base / parts[0], parts[1:]
    if base == pkg:
        return False
    if not parts:
        return True
    source = (base / "__init__.py" if base.is_dir() else base.with_suffix(".py")).read_text()
    defined = rf"^\s*(?:def|class)\s+{parts[0]}\b|^{parts[0]}\s*[:=]|^\s*(?:from .+ )?import .*\b{parts[0]}\b"
    return re.search(defined, source, re.M) is not None


def missing_code(path: Path, root: Path = ROOT) -> list[str]:
    """'file: name: why' for each repository path, source file or spherereid module that `path` names
    and the tree lacks."""
    text, known = path.read_text(), source_files(root)
    problems = []
    for found in REPO_PATH.finditer(text):
        rel, test = found.group(1), found.group(2)
        if not (root / rel).exists():
            problems.append(f"{rel}: no such path")
        elif not _test_named(root / rel, test):
            problems.append(f"{rel}::{test}: no such test")
    for span in CODE_SPAN.finditer(FENCE.sub("", text)):
        word = span.group(2).strip()
        named = SPAN_FILE.match(word)
        if not named or REPO_PATH.fullmatch(word):
            continue
        rel, test = named.groups()
        hits = [k for k in known if k == rel or k.endswith("/" + rel)]
        if not hits:
            problems.append(f"{rel}: no source file of that name")
        elif not any(_test_named(root / k, test) for k in hits):
            problems.append(f"{rel}::{test}: no such test")
    pkg = root / "model" / "spherereid"
    for found in DOTTED.finditer(text):
        dotted = found.group(0)
        if dotted.rsplit(".", 1)[1] not in NOT_MODULES and not _module_name_exists(dotted, pkg):
            problems.append(f"{dotted}: no such module or name")
    return [f"{path.relative_to(root)}: {p}" for p in problems]


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_code_a_document_names_exists(path):
    assert missing_code(path) == []


def test_the_check_finds_a_moved_path_a_missing_test_and_a_gone_module(tmp_path):
    (tmp_path / "model" / "pkg").mkdir(parents=True)
    (tmp_path / "model" / "spherereid").mkdir()
    (tmp_path / "model" / "spherereid" / "contracts.py").write_text("class TrainDir:\n    pass\n")
    (tmp_path / "model" / "pkg" / "mod.py").write_text("def test_real_one():\n    pass\n")
    (tmp_path / "tests").mkdir()
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Parsers live in model/pkg/ and model/pkg/mod.py, not model/spherereid/datasets/.\n"
        "See `pkg/mod.py`, `mod.py::test_real...` and `mod.py::test_gone`;\n"
        "`stages/<stage>.py` is a pattern,\n"
        "model/pkg/mod.py::test_real_one exists, model/pkg/mod.py::test_other does not; pipeline/component\n"
        "signatures are prose; `gone.py` is not there; spherereid.contracts.TrainDir and "
        "spherereid.yaml are fine, spherereid.nowhere is not.\n"
    )
    assert missing_code(doc, root=tmp_path) == [
        "doc.md: model/spherereid/datasets/: no such path",
        "doc.md: model/pkg/mod.py::test_other: no such test",
        "doc.md: mod.py::test_gone: no such test",
        "doc.md: gone.py: no source file of that name",
        "doc.md: spherereid.nowhere: no such module or name",
    ]
