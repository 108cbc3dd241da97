"""Your own data, one folder per identity: `<root>/{train,query,gallery}/<identity>/<image>`.

The identity is the folder name, any text; identities are numbered 1..N in sorted name order over
all splits (so train relabels in sorted order and a name in query and gallery is one identity).
Images are `.jpg`, `.jpeg` or `.png` (any case). Cameras are optional: `data.camera_pattern` is a
regex searched in the file's basename whose group 1 is the camera (e.g. `c(\\d+)`); cameras are
numbered 0..K-1 in sorted order (numeric when all are digits), and evaluation uses the Market rule
(gallery images of the query's identity from its camera are ignored). A file the pattern does not
match is skipped.

Without a pattern there are no cameras: for each query only the query image itself is excluded,
i.e. the gallery file with the same identity folder and file name. This is written with the Market
rule: query k gets camid k+1, a gallery copy of it gets the same camid, every other image camid 0
(so the manifest's camids are per-image keys, not cameras; `protocol["cameras"]` is False and a note
in the report says so). Loose files, sub-folders in an identity folder, non-images, symlinks leaving
the root and empty identity folders are `Skipped` entries naming the path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import DatasetError, Item, Skipped, Splits
from .naming import IMAGE_SUFFIXES, inside_root, is_ignored, require_folder
from .registry import register

SPLITS = ("train", "query", "gallery")


@dataclass(frozen=True)
class Found:
    """One usable image before numbering: split, identity folder name, path, camera text."""

    split: str
    identity: str
    path: Path
    source: str
    camera: str


def _file_error(entry: os.DirEntry, root: Path, pattern: re.Pattern[str] | None) -> str | None:
    if entry.is_symlink() and not inside_root(Path(entry.path), root):
        return f"symlink to {os.path.realpath(entry.path)}, outside the dataset root"
    if entry.is_dir():
        return "unexpected sub-folder in an identity folder (not scanned)"
    if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image file (expected .jpg, .jpeg or .png)"
    if pattern is not None and pattern.search(entry.name) is None:
        return f"no camera: the name does not match data.camera_pattern '{pattern.pattern}'"
    return None


def scan_split(root: Path, split: str, pattern: re.Pattern[str] | None) -> tuple[list[Found], list[Skipped]]:
    """Usable images of `<root>/<split>/<identity>/*`, sorted by identity then file name."""
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: split folder missing; custom_folders needs {root}/"
            "{train,query,gallery}/<identity>/<image>"
        )
    found: list[Found] = []
    skipped: list[Skipped] = []
    for ident in sorted(os.scandir(folder), key=lambda e: e.name):
        rel_dir = f"{split}/{ident.name}"
        if is_ignored(ident.name):
            continue
        if not ident.is_dir() or (ident.is_symlink() and not inside_root(Path(ident.path), root)):
            skipped.append(Skipped(rel_dir, "not an identity folder (expected <split>/<identity>/<image>)"))
            continue
        before = len(found)
        for entry in sorted(os.scandir(ident.path), key=lambda e: e.name):
            if is_ignored(entry.name):
                continue
            rel = f"{rel_dir}/{entry.name}"
            error = _file_error(entry, root, pattern)
            if error is not None:
                skipped.append(Skipped(rel, error))
                continue
            camera = pattern.search(entry.name).group(1) if pattern is not None else ""  # type: ignore[union-attr]
            found.append(Found(split, ident.name, Path(entry.path), rel, camera))
        if len(found) == before:
            skipped.append(Skipped(rel_dir, "identity folder holds no usable image"))
    return found, skipped


def _camera_ids(found: list[Found]) -> dict[str, int]:
    names = sorted({f.camera for f in found})
    if all(n.isdigit() for n in names):
        names.sort(key=int)
    return {n: i for i, n in enumerate(names)}


def _no_camera_ids(found: list[Found]) -> list[int]:
    """Per-image camids that make the Market rule exclude only a query's own file from its gallery."""
    query_key = {
        (f.identity, f.path.name): k + 1 for k, f in enumerate(x for x in found if x.split == "query")
    }
    camids, k = [], 0
    for f in found:
        if f.split == "query":
            k += 1
            camids.append(k)
        else:
            camids.append(query_key.get((f.identity, f.path.name), 0) if f.split == "gallery" else 0)
    return camids


@dataclass(frozen=True)
class CustomFoldersOptions:
    """custom_folders' options (params.yaml: data.camera_pattern)."""

    camera_pattern: str = ""  # regex whose group 1 is the camera in a file name; "" = none


@register("custom_folders", options=CustomFoldersOptions, data_keys={"camera_pattern": "camera_pattern"})
def parse(root: Path, work_dir: Path, *, camera_pattern: str = "") -> Splits:
    """Parse `<root>/{train,query,gallery}/<identity>/<image>` into train / query / gallery items."""
    root = Path(root)
    require_folder(root, "train/, query/ and gallery/ (one sub-folder per identity)")
    pattern = re.compile(camera_pattern) if camera_pattern else None
    found: list[Found] = []
    skipped: list[Skipped] = []
    for split in SPLITS:
        items, skip = scan_split(root, split, pattern)
        if not items:
            raise DatasetError(
                f"{root / split}: no usable images for the {split} split ({len(skip)} "
                "skipped); expected <identity>/<image>.jpg inside it"
            )
        found, skipped = found + items, skipped + skip
    pids = {name: n for n, name in enumerate(sorted({f.identity for f in found}), 1)}
    if pattern is not None:
        cams = _camera_ids(found)
        camids = [cams[f.camera] for f in found]
    else:
        camids = _no_camera_ids(found)
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for f, camid in zip(found, camids, strict=True):
        out[f.split].append(Item(path=f.path, pid=pids[f.identity], camid=camid, source=f.source))
    protocol = _protocol(camera_pattern, sorted(cams, key=lambda n: cams[n]) if pattern is not None else [])
    return Splits(out["train"], out["query"], out["gallery"], skipped, protocol)


def _protocol(camera_pattern: str, camera_names: list[str]) -> dict[str, Any]:
    if camera_pattern:
        return {
            "name": "market",
            "cameras": True,
            "camera_pattern": camera_pattern,
            "camera_names": camera_names,
            "notes": [
                f"custom_folders: cameras read with data.camera_pattern '{camera_pattern}' "
                f"({len(camera_names)} cameras); same-identity same-camera gallery images are ignored"
            ],
        }
    return {
        "name": "market",
        "cameras": False,
        "notes": [
            "custom_folders: no cameras (data.camera_pattern is empty): for each query only the "
            "gallery file with the same identity folder and file name is excluded; camids are "
            "per-image keys (query k: k+1, its gallery copy: k+1, all others: 0), not cameras"
        ],
    }
