"""The documentation holds together: every relative link in README.md, DEVELOPERS.md and docs/*.md reaches
an existing file (and, for `#anchor` links into Markdown, a heading with that GitHub slug), every docs page
is reachable from the README, and the README stays a five-minute read that opens with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README_MAX_LINES = 150
FIRST_COMMANDS = ["bash scripts/main.sh", "bash scripts/test.sh"]

FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
LINK = re.compile(r"\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)[ \t#]*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def doc_files() -> list[Path]:
    return [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """`text` without fenced code blocks and inline code spans (links there are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text only, lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub makes for the headings of `path` (a repeated slug gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """'file: [text](target): why' for each relative link (or image) of `path` that does not resolve."""
    problems = []
    for text, target in LINK.findall(prose(path.read_text())):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: [{text}]({target})"
        if not dest.exists():
            problems.append(f"{where}: no such file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{where}: no heading with anchor #{anchor} in {dest.name}")
    return problems


def first_code_block(text: str) -> list[str]:
    """The commands of the first fenced block: its lines without comments and blank lines."""
    match = FENCE.search(text)
    assert match, "no fenced code block"
    lines = match.group(0).splitlines()[1:-1]
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    assert broken_links(path) == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for _, target in LINK.findall(prose((ROOT / "README.md").read_text()))
        if not EXTERNAL.match(target) and not target.startswith("#")
    }
    pages = {p.resolve() for p in (ROOT / "docs").glob("*.md") if p.name != "README.md"}
    assert sorted(p.name for p in pages - linked) == []


def test_the_readme_is_short_and_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    n_lines = len(text.splitlines())
    assert n_lines <= README_MAX_LINES, (
        f"README.md has {n_lines} lines (at most {README_MAX_LINES}): move text to docs/"
    )
    assert first_code_block(text) == FIRST_COMMANDS
    first_section = text.find("\n## ")
    assert first_section == -1 or FENCE.search(text).start() < first_section, (
        "the commands come before any section"
    )


def test_the_checker_finds_a_missing_file_an_image_and_a_missing_anchor(tmp_path):
    (tmp_path / "page.md").write_text("# A page\n\n## Paper's scale (GPU)\n\n## Paper's scale (GPU)\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](page.md) [ok](page.md#papers-scale-gpu) [ok](page.md#papers-scale-gpu-1) [ok](#top)\n"
        "# Top\n[web](https://example.com/x.md) `[code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n  ```bash\n  # not a heading\n  [fenced](nowhere.md)\n  ```\n"
        "[gone](missing.md) [bad](page.md#papers-scale) ![img](missing.png)\n"
    )
    assert {"top", "a-page", "papers-scale-gpu", "papers-scale-gpu-1"} <= anchors(doc) | anchors(
        tmp_path / "page.md"
    )
    assert "not-a-heading" not in anchors(doc)
    found = [p.split(": ")[1] for p in broken_links(doc, root=tmp_path)]
    assert found == ["[gone](missing.md)", "[bad](page.md#papers-scale)", "[img](missing.png)"]


def test_the_readme_check_counts_lines_and_commands():
    long_readme = "# x\n```bash\nbash scripts/main.sh  # job\n\nbash scripts/test.sh\n```\n" + "line\n" * 200
    assert first_code_block(long_readme) == FIRST_COMMANDS
    assert len(long_readme.splitlines()) > README_MAX_LINES
    assert first_code_block("```\nbash scripts/main.sh\nmake\n```\n") != FIRST_COMMANDS
