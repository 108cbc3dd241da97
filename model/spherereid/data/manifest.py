"""The prepared-data contract between preprocess and every later stage.

A prepared directory holds:
- `manifest.csv`: one row per image: split, index (row in that split's image array), pid, camid,
  label (0..C-1 for train, -1 otherwise), source (original file) and sha256 (of the source bytes).
- `images_<split>.npy`: uint8 array (N, H, W, 3), resized once; read with mmap so training never
  re-decodes JPEGs.
- `dataset.json`: {"dataset", "height", "width", "num_classes", "protocol": {...}}. A combined set
  ('market1501+msmt17') has protocol["sources"]: per source its name, pid/camid offsets, own protocol,
  row ranges per split (`ranges`: {split: [start, stop]}) and `fingerprint` (its version).
After preprocess nothing downstream knows dataset names or file formats.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..contracts import DATASET_INFO_FILE, MANIFEST_FILE

SPLITS = ("train", "query", "gallery")
MANIFEST = MANIFEST_FILE
INFO = DATASET_INFO_FILE
COLUMNS = ("split", "index", "pid", "camid", "label", "source", "sha256")


class ManifestError(ValueError):
    """A prepared directory is missing or inconsistent: the message names the file and the fix."""


@dataclass(frozen=True)
class Entry:
    """One manifest row."""

    split: str
    index: int
    pid: int
    camid: int
    label: int
    source: str
    sha256: str


@dataclass
class SplitData:
    """One split: images (N, H, W, 3) uint8 and per-image int64 pids, camids, labels (N,)."""

    images: np.ndarray
    pids: np.ndarray
    camids: np.ndarray
    labels: np.ndarray
    sources: list[str]

    def __len__(self) -> int:
        return int(self.pids.shape[0])


def image_array_path(root: Path, split: str) -> Path:
    return Path(root) / f"images_{split}.npy"


def create_image_array(root: Path, split: str, count: int, height: int, width: int) -> np.memmap:
    """A writable (count, height, width, 3) uint8 .npy memmap for one split."""
    return np.lib.format.open_memmap(
        image_array_path(root, split), mode="w+", dtype=np.uint8, shape=(count, height, width, 3)
    )


def write_manifest(root: Path, entries: list[Entry], info: dict[str, Any]) -> None:
    """Write manifest.csv and dataset.json (images are written separately)."""
    root = Path(root)
    # UTF-8 on every platform; a file name that is not valid UTF-8 (os.fsdecode surrogates) is written
    # with backslash escapes instead of failing
    with open(root / MANIFEST, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for e in entries:
            writer.writerow([e.split, e.index, e.pid, e.camid, e.label, e.source, e.sha256])
    (root / INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_entries(root: Path) -> list[Entry]:
    """All manifest rows, in file order."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest; run the preprocess stage first")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ManifestError(f"{path}: columns {reader.fieldnames} != {list(COLUMNS)}")
        try:
            return [
                Entry(
                    split=r["split"],
                    index=int(r["index"]),
                    pid=int(r["pid"]),
                    camid=int(r["camid"]),
                    label=int(r["label"]),
                    source=r["source"],
                    sha256=r["sha256"],
                )
                for r in reader
            ]
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: malformed row: {exc}") from None


def source_fingerprint(entries: list[Entry]) -> str:
    """sha256 (first 16 hex) of one source's manifest rows (split, pid, camid, source, sha256): the
    version of that source inside a combined prepared set."""
    digest = hashlib.sha256()
    for e in entries:
        digest.update(
            f"{e.split},{e.pid},{e.camid},{e.source},{e.sha256}\n".encode("utf-8", "backslashreplace")
        )
    return digest.hexdigest()[:16]


def describe_sources(entries: list[Entry], sources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Combined-set source entries with `ranges` (rows per split, [start, stop]), `num_images` and
    `fingerprint` added; a source's rows are those whose manifest source starts with '<name>/'."""
    described = []
    for src in sources:
        own = [e for e in entries if e.source.startswith(f"{src['name']}/")]
        ranges = {}
        for split in SPLITS:
            rows = [e.index for e in own if e.split == split]
            ranges[split] = [min(rows), max(rows) + 1] if rows else [0, 0]
        counts = {split: sum(1 for e in own if e.split == split) for split in SPLITS}
        described.append(
            {**src, "ranges": ranges, "num_images": counts, "fingerprint": source_fingerprint(own)}
        )
    return described


class PreparedSet:
    """Read access to a prepared directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / INFO
        if not info_path.is_file():
            raise ManifestError(f"{info_path}: missing; run the preprocess stage first")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        self.entries = read_entries(self.root)

    def fingerprint(self) -> str:
        """sha256 (first 16 hex) of manifest.csv and dataset.json: names this exact data version."""
        digest = hashlib.sha256()
        for name in (MANIFEST, INFO):
            digest.update((self.root / name).read_bytes())
        return digest.hexdigest()[:16]

    def sources(self) -> list[dict[str, Any]]:
        """The sources of a combined set (see describe_sources); [] for a single dataset."""
        return [dict(s) for s in self.protocol.get("sources", [])]

    @property
    def num_classes(self) -> int:
        return int(self.info["num_classes"])

    @property
    def protocol(self) -> dict[str, Any]:
        return dict(self.info.get("protocol", {"name": "market"}))

    def split(self, name: str) -> SplitData:
        """Load one split; images are memory-mapped, not read into RAM."""
        if name not in SPLITS:
            raise ManifestError(f"unknown split '{name}' (one of {SPLITS})")
        rows = sorted((e for e in self.entries if e.split == name), key=lambda e: e.index)
        path = image_array_path(self.root, name)
        if not path.is_file():
            raise ManifestError(f"{path}: missing image array; re-run the preprocess stage")
        images = np.load(path, mmap_mode="r")
        if images.shape[0] != len(rows) or [e.index for e in rows] != list(range(len(rows))):
            raise ManifestError(
                f"{path}: holds {images.shape[0]} images but {self.root / MANIFEST} lists {len(rows)} "
                f"for split '{name}'; re-run the preprocess stage"
            )
        return SplitData(
            images=images,
            pids=np.array([e.pid for e in rows], dtype=np.int64),
            camids=np.array([e.camid for e in rows], dtype=np.int64),
            labels=np.array([e.label for e in rows], dtype=np.int64),
            sources=[e.source for e in rows],
        )
