"""MSMT17 (Wei et al., CVPR 2018): 4,101 identities (1,041 train / 3,060 test), 15 cameras.

Layouts: V1 `MSMT17_V1/{train,test}/` and V2 `MSMT17_V2/{mask_train_v2,mask_test_v2}/` (either
case of `v2`), each next to the lists `list_train.txt`, `list_val.txt` (images in train/),
`list_query.txt` and `list_gallery.txt` (images in test/). Point the raw path at the version folder,
or at a folder holding `MSMT17_V1/`, `MSMT17_V2/` or `msmt17/MSMT17_V*/`. A list line is
`<pid folder>/<file name> <pid>`, e.g. `0000/0000_000_01_0303morning_0015_0.jpg 0`; the camera is
the third underscore field of the file name (01..15). Real counts: 32,621 train (30,248 + 2,373 val),
11,659 query, 82,161 gallery images.

Identities: the lists number train and test identities from 0 each, so they are stored as
pid = list pid + 1 (train, val) and pid = list pid + 1 + TEST_PID_OFFSET (query, gallery): train and
test identities are disjoint and no identity is 0 (the distractor id of Market-1501).
`data.msmt17_train_with_val` (default true, the common practice) trains on list_train + list_val; off,
the val images are left out and counted in `protocol["val_images_excluded"]`.
Bad list lines, listed files that are missing, and image files named in no list are `Skipped`
entries naming the file (and the list line); a missing list file is a one-line DatasetError.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .base import DatasetError, Item, Skipped, Splits
from .naming import IMAGE_SUFFIXES, inside_root, is_ignored
from .registry import register

log = logging.getLogger(__name__)

MAX_CAM = 15
TEST_PID_OFFSET = 10_000  # test pids are list pid + 1 + this (list pids are < 10,000)
VERSIONS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
SUBDIRS = ["", "MSMT17_V1", "MSMT17_V2", "msmt17/MSMT17_V1", "msmt17/MSMT17_V2", "msmt17"]
LISTS = {  # split -> (list file, in the train (0) or test (1) folder)
    "train": ("list_train.txt", 0),
    "val": ("list_val.txt", 0),
    "query": ("list_query.txt", 1),
    "gallery": ("list_gallery.txt", 1),
}


@dataclass(frozen=True)
class Layout:
    """A located release: its folder, version, and the train / test image folders."""

    folder: Path
    version: str
    image_dirs: tuple[Path, Path]


def _image_dir(folder: Path, name: str) -> Path | None:
    for cand in (name, name.replace("v2", "V2")):
        if (folder / cand).is_dir():
            return folder / cand
    return None


def locate(root: Path) -> Layout:
    """The MSMT17 folder under `root` (see the module docstring); DatasetError naming where it looked."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root does not exist or is not a folder; check the raw data path")
    for sub in SUBDIRS:
        folder = root / sub if sub else root
        for version, (train, test) in VERSIONS.items():
            dirs = (_image_dir(folder, train), _image_dir(folder, test))
            if dirs[0] is not None and dirs[1] is not None:
                return Layout(folder, version, (dirs[0], dirs[1]))
    where = ", ".join(str(root / s) if s else str(root) for s in SUBDIRS)
    raise DatasetError(
        f"{root}: no MSMT17 release (train/ + test/ or mask_train_v2/ + mask_test_v2/ next to "
        f"list_*.txt) in {where}; point the raw data path at MSMT17_V1/ or MSMT17_V2/"
    )


def scan_images(image_dir: Path, root: Path, skipped: list[Skipped]) -> set[str]:
    """Paths `<pid folder>/<file>` (posix) of the files in `image_dir`; odd entries go to `skipped`."""
    found: set[str] = set()
    for folder in sorted(os.scandir(image_dir), key=lambda e: e.name):
        rel_dir = Path(folder.path).relative_to(root).as_posix()
        if is_ignored(folder.name):
            continue
        if not folder.is_dir():
            skipped.append(Skipped(rel_dir, "file outside a <pid folder>/ (not scanned)"))
            continue
        for entry in os.scandir(folder.path):
            if is_ignored(entry.name):
                continue
            rel = f"{rel_dir}/{entry.name}"
            if entry.is_symlink() and not inside_root(Path(entry.path), root):
                skipped.append(Skipped(rel, f"symlink to {os.path.realpath(entry.path)}, outside the root"))
            elif entry.is_dir():
                skipped.append(Skipped(rel, "unexpected sub-folder in a pid folder (not scanned)"))
            else:
                found.add(f"{folder.name}/{entry.name}")
    return found


def _line_error(rel: str, pid_text: str) -> str | None:
    """Why a list entry `<rel path> <pid>` is unusable, or None."""
    if not pid_text.isdigit():
        return f"pid '{pid_text}' is not a non-negative integer"
    if rel.startswith("/") or ".." in rel.split("/") or rel.count("/") != 1:
        return f"path '{rel}' is not <pid folder>/<file name>"
    if Path(rel).suffix.lower() not in IMAGE_SUFFIXES:
        return f"'{rel}' is not an image file (expected .jpg, .jpeg or .png)"
    fields = Path(rel).name.split("_")
    if len(fields) < 3 or not fields[2].isdigit():
        return f"file name '{Path(rel).name}' has no camera field (third '_' field, 01..15)"
    if not 1 <= int(fields[2]) <= MAX_CAM:
        return f"camera {fields[2]} outside 01..{MAX_CAM:02d}"
    return None


def read_list(
    list_path: Path, image_dir: Path, found: set[str], pid_base: int, root: Path
) -> tuple[list[Item], list[Skipped], set[str]]:
    """Items of one list file; bad lines / missing files as Skipped; also the listed paths."""
    if not list_path.is_file():
        raise DatasetError(
            f"{list_path}: MSMT17 list file missing; the release has list_train.txt, list_val.txt, "
            "list_query.txt and list_gallery.txt next to the image folders"
        )
    items: list[Item] = []
    skipped: list[Skipped] = []
    listed: set[str] = set()
    prefix = image_dir.relative_to(root).as_posix()
    for n, line in enumerate(list_path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{list_path.relative_to(root).as_posix()} line {n}"
        parts = line.split()
        error = "expected '<pid folder>/<file name> <pid>'" if len(parts) != 2 else _line_error(*parts)
        if error is None and parts[0] in listed:
            error = f"'{parts[0]}' listed twice"
        if error is None and parts[0] not in found:
            error = f"'{prefix}/{parts[0]}' not found"
        if error is not None:
            skipped.append(Skipped(where, f"{error}: '{line.strip()[:200]}'"))
            continue
        rel, pid = parts[0], int(parts[1])
        listed.add(rel)
        cam = int(Path(rel).name.split("_")[2])
        items.append(Item(path=image_dir / rel, pid=pid_base + pid, camid=cam - 1, source=f"{prefix}/{rel}"))
    return items, skipped, listed


@dataclass(frozen=True)
class Msmt17Options:
    """MSMT17's options (params.yaml: data.msmt17_train_with_val)."""

    train_with_val: bool = True  # train on list_train.txt + list_val.txt (common practice)


DATA_KEYS = {"msmt17_train_with_val": "train_with_val"}


@register("msmt17", options=Msmt17Options, data_keys=DATA_KEYS)
def parse(root: Path, work_dir: Path, *, train_with_val: bool = True) -> Splits:
    """Parse an MSMT17 V1 or V2 release into train / query / gallery items (pids as documented above)."""
    root = Path(root)
    layout = locate(root)
    skipped: list[Skipped] = []
    found = [scan_images(d, root, skipped) for d in layout.image_dirs]
    listed: list[set[str]] = [set(), set()]
    split_items: dict[str, list[Item]] = {}
    for split, (name, which) in LISTS.items():
        base = 1 if which == 0 else 1 + TEST_PID_OFFSET
        items, skip, seen = read_list(
            layout.folder / name, layout.image_dirs[which], found[which], base, root
        )
        split_items[split], listed[which] = items, listed[which] | seen
        skipped += skip
    for which, image_dir in enumerate(layout.image_dirs):
        prefix = image_dir.relative_to(root).as_posix()
        skipped += [
            Skipped(f"{prefix}/{rel}", "image named in no list_*.txt (not used)")
            for rel in sorted(found[which] - listed[which])
        ]
    _require_items(layout, split_items)
    if skipped:
        log.warning("%s: %d entries skipped (first: %s)", layout.folder, len(skipped), skipped[0])
    train = split_items["train"] + (split_items["val"] if train_with_val else [])
    n_val = len(split_items["val"])
    note = f"MSMT17 {layout.version}: " + (
        f"trained on list_train.txt + list_val.txt ({n_val} val images; data.msmt17_train_with_val)"
        if train_with_val
        else f"list_val.txt left out ({n_val} images; data.msmt17_train_with_val is false)"
    )
    protocol = {
        "name": "market",
        "junk_dropped": 0,
        "msmt17_version": layout.version,
        "train_with_val": train_with_val,
        "val_images_excluded": 0 if train_with_val else n_val,
        "notes": [note],
    }
    return Splits(train, split_items["query"], split_items["gallery"], skipped, protocol)


def _require_items(layout: Layout, split_items: dict[str, list[Item]]) -> None:
    for split in ("train", "query", "gallery"):
        if not split_items[split]:
            raise DatasetError(
                f"{layout.folder / LISTS[split][0]}: no usable entries for the {split} split; expected lines "
                "like '0000/0000_000_01_0303morning_0015_0.jpg 0' naming files that exist"
            )
