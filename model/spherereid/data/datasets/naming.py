"""Market-1501-style file names and folders, shared by Market-1501, DukeMTMC-reID and custom data.

A name starts `PPPP_cC`: identity, `_c`, camera number (1-based), e.g. `0002_c1s1_000451_03.jpg`
(Market) or `0005_c2_f0046985.jpg` (Duke). It is parsed from the BASENAME only, never the full path
(a folder such as `x_7_c3/` must not be read as an identity). pid -1 marks junk images: they are
dropped and counted, not reported as skipped. Files that cannot be used (bad name, camera or pid out
of range, symlink leaving the root, not an image, sub-folder) become `Skipped` entries.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .archive import extract_once, is_archive
from .base import DatasetError, Item, Skipped, Splits

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^(-?\d+)_c(\d+)")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})  # plus any dotfile (.DS_Store, ._x.jpg)
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
JUNK_PID = -1


@dataclass(frozen=True)
class NameRules:
    """Valid ranges for one dataset: pid in [min_pid, max_pid], camera number in 1..max_cam."""

    dataset: str
    max_cam: int
    min_pid: int = 0
    max_pid: int = 9999


def parse_name(basename: str) -> tuple[int, int] | None:
    """(pid, camera number as written, 1-based) from a file's basename, or None if it does not match."""
    m = NAME_RE.match(basename)
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2))


def is_ignored(name: str) -> bool:
    """Files that are obviously not data (OS metadata): left out silently."""
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def inside_root(path: Path, root: Path) -> bool:
    """True if `path`, with symlinks resolved, stays inside `root` (also resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base + os.sep)


def require_folder(root: Path, layout: str) -> None:
    """DatasetError unless `root` is an existing folder; `layout` says what it should hold."""
    if not root.exists():
        raise DatasetError(f"{root}: dataset root does not exist; check the raw data path")
    if not root.is_dir():
        raise DatasetError(
            f"{root}: is a file, not a folder; point the raw data path at the folder holding {layout}"
        )


def scan_folder(
    folder: Path, root: Path, rules: NameRules, source_prefix: str = ""
) -> tuple[list[Item], list[Skipped], int]:
    """Items of one flat split folder, sorted by file name; returns (items, skipped, junk count).

    `source` is the path relative to `root` (posix), prefixed by `source_prefix`.
    """
    items: list[Item] = []
    skipped: list[Skipped] = []
    junk = 0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        rel = source_prefix + path.relative_to(root).as_posix()
        if is_ignored(entry.name):
            continue
        if entry.is_symlink() and not inside_root(path, root):
            skipped.append(Skipped(rel, f"symlink to {os.path.realpath(path)}, outside the dataset root"))
            continue
        if entry.is_dir():
            skipped.append(Skipped(rel, "unexpected sub-folder in a split folder (not scanned)"))
            continue
        if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(rel, "not an image file (expected .jpg, .jpeg or .png)"))
            continue
        parsed = parse_name(entry.name)
        if parsed is None:
            skipped.append(Skipped(rel, f"name does not match {rules.dataset} naming 'PPPP_cC...'"))
            continue
        pid, cam = parsed
        if pid == JUNK_PID:
            junk += 1
            continue
        if not rules.min_pid <= pid <= rules.max_pid:
            skipped.append(Skipped(rel, f"pid {pid} outside {rules.min_pid}..{rules.max_pid}"))
            continue
        if not 1 <= cam <= rules.max_cam:
            skipped.append(Skipped(rel, f"camera c{cam} outside c1..c{rules.max_cam}"))
            continue
        items.append(Item(path=path, pid=pid, camid=cam - 1, source=rel))
    return items, skipped, junk


def _has_splits(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in SPLIT_FOLDERS.values())


def locate(root: Path, work_dir: Path, subdirs: list[str], archives: list[str]) -> tuple[Path, Path, str]:
    """Find the folder holding bounding_box_train/ etc.; extract a release archive if that is all there is.

    Looks in `root` and `root/<subdir>` for each subdir (e.g. 'Market-1501-v15.09.15'), then for an
    archive: `root` itself or `<archive>` in one of those folders.
    Returns (data folder, base for relative sources, source prefix).
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: dataset root does not exist; check the raw data path")
    if root.is_dir():
        for sub in ["", *subdirs]:
            cand = root / sub if sub else root
            if _has_splits(cand):
                return cand, root, ""
    dirs = [root / s for s in ["", *subdirs]]
    candidates = [root] if root.is_file() else [d / a for d in dirs for a in archives]
    for arc in candidates:
        if is_archive(arc):
            out = extract_once(arc, work_dir)
            for sub in ["", *subdirs]:
                cand = out / sub if sub else out
                if _has_splits(cand):
                    return cand, out, f"{arc.relative_to(root).as_posix() if root.is_dir() else arc.name}#"
            raise DatasetError(f"{arc}: archive holds no bounding_box_train/, bounding_box_test/, query/")
    where = ", ".join(str(root / s) for s in ["", *subdirs])
    raise DatasetError(
        f"{root}: no folder with bounding_box_train/, bounding_box_test/ and query/ (looked in {where}) "
        f"and no archive ({', '.join(archives)}); point the raw data path at the extracted release"
    )


def parse_market_style(
    root: Path, work_dir: Path, rules: NameRules, subdirs: list[str], archives: list[str]
) -> Splits:
    """Parse a Market-1501-style release (train / query / gallery folders) with the given rules."""
    folder, base, prefix = locate(root, work_dir, subdirs, archives)
    splits: dict[str, list[Item]] = {}
    skipped: list[Skipped] = []
    junk_total = 0
    for split, name in SPLIT_FOLDERS.items():
        items, skip, junk = scan_folder(folder / name, base, rules, prefix)
        if not items:
            raise DatasetError(
                f"{folder / name}: no usable images for the {split} split ({len(skip)} skipped, "
                f"{junk} junk); expected {rules.dataset} names like 0002_c1s1_000451_03.jpg"
            )
        splits[split] = items
        skipped += skip
        junk_total += junk
    if skipped:
        log.warning("%s: %d files skipped (first: %s)", folder, len(skipped), skipped[0])
    return Splits(
        train=splits["train"],
        query=splits["query"],
        gallery=splits["gallery"],
        skipped=skipped,
        protocol={"name": "market", "junk_dropped": junk_total},
    )
