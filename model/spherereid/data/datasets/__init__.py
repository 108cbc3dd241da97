"""Dataset parsers: one module per on-disk format, all returning `Splits` with raw pids.

Each parser module registers itself in registry.py (name -> parser, options dataclass, `data` keys);
importing this package imports every module in it, so a new dataset is one new module.
`parse(name, root, work_dir, data)` looks the name up (a name joining several with '+' is parsed
source by source and combined: see combined.py); `relabel(pids)` maps the train pids to
0..C-1 in sorted order (never set order, which differs between processes).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from pathlib import Path

from ...config import DataConfig
from . import combined, registry
from .archive import ArchiveError, safe_extract
from .base import DatasetError, Item, Skipped, Splits
from .registry import DatasetSpec, get, lookup, names, register

__all__ = [
    "ArchiveError",
    "DatasetError",
    "DatasetSpec",
    "Item",
    "Skipped",
    "Splits",
    "get",
    "lookup",
    "names",
    "parse",
    "register",
    "registry",
    "relabel",
    "safe_extract",
]

for _module in pkgutil.iter_modules(__path__):  # each parser module registers itself on import
    importlib.import_module(f"{__name__}.{_module.name}")


def parse(name: str, root: Path, work_dir: Path, data: DataConfig | None = None) -> Splits:
    """Parse dataset `name` found at `root` with its options taken from the `data` section (defaults
    if None); scratch files (extracted archives/images) go to `work_dir`.

    A combined name 'a+b' reads each source from `root/<source>` (or `root/../<source>`)."""
    data = data or DataConfig()
    if combined.is_combined(name):
        return combined.parse(name, Path(root), Path(work_dir), lambda n, r, w: parse(n, r, w, data))
    spec = get(name)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return spec.parse(Path(root), Path(work_dir), spec.options_from(data))


def relabel(pids: Iterable[int]) -> dict[int, int]:
    """Map each distinct pid to 0..C-1 in ascending pid order, e.g. [7, 2, 7, 5] -> {2: 0, 5: 1, 7: 2}."""
    return {pid: label for label, pid in enumerate(sorted(set(pids)))}
