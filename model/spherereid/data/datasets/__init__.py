"""Dataset parsers: one module per on-disk format, all returning `Splits` with raw pids.

`parse(name, root, work_dir, ...)` dispatches on `DATASETS` (a name joining several with '+' is parsed
source by source and combined: see combined.py); `relabel(pids)` maps the train pids to
0..C-1 in sorted order (never set order, which differs between processes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import combined, cuhk03, cuhk_sysu, custom, custom_folders, dukemtmc, market1501, msmt17, veri776
from .archive import ArchiveError, safe_extract
from .base import DatasetError, Item, Skipped, Splits

__all__ = [
    "DATASETS",
    "ArchiveError",
    "DatasetError",
    "Item",
    "Skipped",
    "Splits",
    "parse",
    "relabel",
    "safe_extract",
]


def _synthetic(root: Path, work_dir: Path, *, train_with_val: bool = True) -> Splits:
    """The synthesize stage's output: MSMT17 layout if it holds list_train.txt, else Market-1501."""
    if (Path(root) / "list_train.txt").is_file():
        return msmt17.parse(root, work_dir, train_with_val=train_with_val)
    return market1501.parse(root, work_dir)


DATASETS: dict[str, Callable[..., Splits]] = {
    "market1501": market1501.parse,
    "dukemtmc": dukemtmc.parse,
    "cuhk03": cuhk03.parse,
    "cuhk_sysu": cuhk_sysu.parse,
    "custom": custom.parse,
    "custom_folders": custom_folders.parse,
    "msmt17": msmt17.parse,
    "veri776": veri776.parse,
    "synthetic": _synthetic,
    "synthetic_b": _synthetic,  # the synthesize stage with --domain b (another camera network)
}


def parse(
    name: str,
    root: Path,
    work_dir: Path,
    *,
    cuhk03_labels: str = "detected",
    cuhk03_protocol: str = "new",
    cuhk03_split: int = 0,
    cuhksysu_gallery_size: int = 100,
    msmt17_train_with_val: bool = True,
    camera_pattern: str = "",
) -> Splits:
    """Parse dataset `name` found at `root`; scratch files (extracted archives/images) go to `work_dir`.

    A combined name 'a+b' reads each source from `root/<source>` (or `root/../<source>`)."""
    options: dict[str, Any] = {
        "cuhk03_labels": cuhk03_labels, "cuhk03_protocol": cuhk03_protocol, "cuhk03_split": cuhk03_split,
        "cuhksysu_gallery_size": cuhksysu_gallery_size, "msmt17_train_with_val": msmt17_train_with_val,
        "camera_pattern": camera_pattern,
    }  # fmt: skip
    if combined.is_combined(name):
        return combined.parse(name, Path(root), Path(work_dir), lambda n, r, w: parse(n, r, w, **options))
    return _parse_one(name, Path(root), Path(work_dir), **options)


def _parse_one(
    name: str,
    root: Path,
    work_dir: Path,
    *,
    cuhk03_labels: str,
    cuhk03_protocol: str,
    cuhk03_split: int,
    cuhksysu_gallery_size: int,
    msmt17_train_with_val: bool,
    camera_pattern: str,
) -> Splits:
    """One (not combined) dataset."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    work_dir.mkdir(parents=True, exist_ok=True)
    if name == "cuhk03":
        return cuhk03.parse(
            root, work_dir, labels=cuhk03_labels, protocol=cuhk03_protocol, split=cuhk03_split
        )
    if name == "cuhk_sysu":
        return cuhk_sysu.parse(root, work_dir, gallery_size=cuhksysu_gallery_size)
    if name in ("msmt17", "synthetic", "synthetic_b"):
        return DATASETS[name](root, work_dir, train_with_val=msmt17_train_with_val)
    if name == "custom_folders":
        return custom_folders.parse(root, work_dir, camera_pattern=camera_pattern)
    return DATASETS[name](root, work_dir)


def relabel(pids: Iterable[int]) -> dict[int, int]:
    """Map each distinct pid to 0..C-1 in ascending pid order, e.g. [7, 2, 7, 5] -> {2: 0, 5: 1, 7: 2}."""
    return {pid: label for label, pid in enumerate(sorted(set(pids)))}
