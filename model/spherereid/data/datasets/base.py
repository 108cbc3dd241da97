"""What every dataset parser returns: train/query/gallery items plus what it skipped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DatasetError(ValueError):
    """A dataset cannot be read at all (missing folder, empty split, ...): the message names the path."""


@dataclass(frozen=True)
class Item:
    """One image: its file, raw identity (pid) and 0-based camera id.

    `source` is what the manifest records as the image's origin (the path relative to the dataset
    root, or `archive.mat#ref` for images stored inside a file); `crop` is an optional (x, y, w, h)
    box to cut from `path` (CUHK-SYSU scenes).
    """

    path: Path
    pid: int
    camid: int
    source: str = ""
    crop: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Skipped:
    """A file left out, and why (reported by preprocess, never silently dropped)."""

    path: str
    reason: str


@dataclass
class Splits:
    """A parsed dataset.

    `protocol` describes evaluation beyond the standard Market protocol, e.g.
    {"name": "market"} (default), {"name": "cuhk03-classic", "repeats": 10}, or
    {"name": "cuhk-sysu", "gallery_size": 100, "galleries": [[gallery indices] per query]}.
    """

    train: list[Item]
    query: list[Item]
    gallery: list[Item]
    skipped: list[Skipped] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=lambda: {"name": "market"})
