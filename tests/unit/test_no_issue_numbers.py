"""Code explains itself without the tracker: no comment, docstring or message in the library, the KFP
components, the pipeline or the scripts cites an issue ("issue 18", "issues 11 and 18", "#21")."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("model/spherereid", "components", "pipeline", "scripts", "benchmarks")
CITATION = re.compile(r"\bissues?\s+#?\d+|(?<![\w&/])#\d{1,4}\b", re.I)


def citations(path: Path) -> list[str]:
    """'path:line: text' for each line of `path` that cites an issue number."""
    return [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if CITATION.search(line)
    ]


def test_no_code_cites_an_issue_number():
    files = [p for d in SCANNED for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".sh", ".yaml")]
    files.append(ROOT / "dvc.yaml")
    assert len(files) > 100
    assert [hit for path in files for hit in citations(path)] == []


def test_the_pattern_finds_citations_and_spares_colours_and_counts():
    cited = ["# runs before issue 18", "(issues 11 and 18)", "see Issue #21", "fixed in #7"]
    spared = ['color="#1f77b4"', "# 18 issues at most", "&#39;", "a/#1", "issue tracker"]
    assert all(CITATION.search(text) for text in cited)
    assert not any(CITATION.search(text) for text in spared)
