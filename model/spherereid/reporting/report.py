"""Validation figures of a parsed dataset and the preprocess report (report.json + report.md).

The checks work on (pid, camid) lists so they run before and after decoding alike:
identity / camera counts per split, train-test identity overlap (pids 0 and -1 excepted),
queries without a cross-camera gallery match, identities with a single training image and
duplicate images (same content hash).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..contracts import REPORT_JSON, REPORT_MD
from ..data.datasets.base import Item, Skipped

NON_IDENTITIES = frozenset({0, -1})  # distractors and junk may appear anywhere
FIRST = 10  # how many offenders a message or list shows
MD_FILES = 100  # skipped files listed in report.md (report.json lists all)


def split_stats(items: Sequence[Item]) -> dict[str, int]:
    """Images, identities and cameras of one split."""
    return {
        "images": len(items),
        "identities": len({i.pid for i in items}),
        "cameras": len({i.camid for i in items}),
    }


def identity_overlap(train: Sequence[Item], test: Sequence[Item]) -> list[int]:
    """Sorted pids present in both train and test (query + gallery), ignoring distractor / junk ids."""
    return sorted(({i.pid for i in train} & {i.pid for i in test}) - NON_IDENTITIES)


def queries_without_match(
    query: Sequence[Item], gallery: Sequence[Item], galleries: list[list[int]] | None = None
) -> list[int]:
    """Indices of queries with no usable gallery match.

    Market rule: a match has the query's pid in another camera. With per-query `galleries`
    (CUHK-SYSU), a match is any item of that query's gallery list with the query's pid.
    """
    if galleries is not None:
        return [
            q for q, item in enumerate(query) if not any(gallery[g].pid == item.pid for g in galleries[q])
        ]
    cams: dict[int, set[int]] = {}
    for g in gallery:
        cams.setdefault(g.pid, set()).add(g.camid)
    return [q for q, item in enumerate(query) if not (cams.get(item.pid, set()) - {item.camid})]


def single_image_identities(train: Sequence[Item]) -> list[int]:
    """Sorted train pids with exactly one image."""
    return sorted(pid for pid, n in Counter(i.pid for i in train).items() if n == 1)


def duplicate_images(images: Sequence[tuple[str, str, str]]) -> list[tuple[str, str]]:
    """(source, source of its first copy) for each (split, source, sha256) whose content repeats an
    earlier image of the same split, or a train image in query / gallery (a leak). Copies shared by
    query and gallery are allowed: CUHK03-classic uses query = gallery."""
    first: dict[tuple[str, str], str] = {}  # (split, sha256) -> source of the first copy
    out = []
    for split, source, sha in images:
        prev = first.get((split, sha)) or first.get(("train", sha))
        if prev is not None:
            out.append((source, prev))
        else:
            first[(split, sha)] = source
    return out


def skipped_summary(skipped: Sequence[Skipped]) -> dict[str, int]:
    """Count of skipped files per reason (reasons with file-specific details are kept whole)."""
    return dict(Counter(s.reason for s in skipped).most_common())


SKIPPED_FILES = ("skipped_files.md", "skipped_files.json")


def skipped_files_paths(out_dir: Path) -> tuple[Path, Path]:
    """Where a refused preprocess writes its full list of skipped files: (markdown, JSON)."""
    return Path(out_dir) / SKIPPED_FILES[0], Path(out_dir) / SKIPPED_FILES[1]


def write_skipped_files(
    out_dir: Path, skipped: Sequence[Skipped], candidates: int, limit: float
) -> tuple[Path, Path]:
    """Every skipped file with its reason, as markdown and JSON in `out_dir`; returns both paths."""
    md, js = skipped_files_paths(out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    fraction = len(skipped) / candidates if candidates else 0.0
    files = [{"path": s.path, "reason": s.reason} for s in skipped]
    js.write_text(
        json.dumps(
            {
                "count": len(skipped),
                "candidates": candidates,
                "fraction": fraction,
                "limit": limit,
                "by_reason": skipped_summary(skipped),
                "files": files,
            },
            indent=2,
        )
        + "\n"
    )
    lines = [
        f"# Skipped files: {len(skipped)} of {candidates} ({_pct(fraction)}, limit {_pct(limit)})",
        "",
        "Preprocess refused the dataset: fix or remove these files (or raise `data.max_bad_fraction`).",
        "",
        *(f"- {n} x {reason}" for reason, n in skipped_summary(skipped).items()),
        "",
        "| file | reason |",
        "|---|---|",
        *(f"| `{f['path']}` | {f['reason']} |" for f in files),
    ]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="backslashreplace")
    return md, js


def write_report(out_dir: Path, report: dict[str, Any]) -> None:
    """Write report.json and report.md into `out_dir`."""
    out_dir = Path(out_dir)
    (out_dir / REPORT_JSON).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    # file names that are not valid UTF-8 are written with backslash escapes (report.json: \udcxx escapes)
    (out_dir / REPORT_MD).write_text(render_markdown(report), encoding="utf-8", errors="backslashreplace")


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}%"


def render_markdown(r: dict[str, Any]) -> str:
    """A readable summary of a report dict (as written to report.json)."""
    lines = [
        f"# Preprocess report: {r['dataset']}",
        "",
        f"- raw data: `{r['raw_dir']}`",
        f"- stored size: {r['height']}x{r['width']} (height x width), {r['num_classes']} training classes",
        f"- protocol: {r['protocol_name']}",
        f"- junk images dropped (pid -1): {r.get('junk_dropped', 0)}",
        *(f"- note: {note}" for note in r.get("notes", [])),
        "",
        "| split | images | identities | cameras |",
        "|---|---:|---:|---:|",
    ]
    for split, s in r["splits"].items():
        lines.append(f"| {split} | {s['images']} | {s['identities']} | {s['cameras']} |")
    b = r["baseline"]
    lines += ["", "## Raw-pixel baseline", ""]
    if "rank1" in b:
        lines.append(f"{b['method']}: rank-1 {_pct(b['rank1'])}, mAP {_pct(b['mAP'])} (the figure to beat).")
    else:
        lines.append(f"Not computed: {b['note']}")
    sk = r["skipped"]
    head = f"{sk['count']} of {sk['candidates']} ({_pct(sk['fraction'])}, limit {_pct(sk['limit'])})"
    lines += ["", f"## Skipped files: {head}", ""]
    for reason, n in sk["by_reason"].items():
        lines.append(f"- {n} x {reason}")
    if sk["files"]:
        lines += ["", "| file | reason |", "|---|---|"]
        lines += [f"| `{f['path']}` | {f['reason']} |" for f in sk["files"][:MD_FILES]]
        if len(sk["files"]) > MD_FILES:
            lines += ["", f"... and {len(sk['files']) - MD_FILES} more (all are listed in report.json)."]
    w = r["warnings"]
    q, s1 = w["queries_without_match"], w["single_image_identities"]
    dup = w.get("duplicate_images", {"count": 0, "first": []})
    first_q = ", ".join(q["first"]) or "-"
    first_s = ", ".join(map(str, s1["first"])) or "-"
    first_d = ", ".join(f"`{a}` = `{b}`" for a, b in dup["first"]) or "-"
    lines += [
        "",
        "## Warnings",
        "",
        f"- queries without a cross-camera gallery match: {q['count']} (first: {first_q})",
        f"- training identities with one image: {s1['count']} (first pids: {first_s})",
        f"- duplicate images (same bytes as an earlier one): {dup['count']} (first: {first_d})",
    ]
    return "\n".join(lines) + "\n"
