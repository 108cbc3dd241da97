"""Several datasets trained as one: `datasets: [market1501+msmt17]` parses each source and joins them.

Identities are made disjoint by offsetting each source's pids (pid >= 0) by the pid span of the sources
before it; junk pids (< 0) stay as they are. Cameras are kept per source the same way (camid offsets).
The joined protocol is {"name": <the sources' common protocol>, "sources": [per-source entries]}; each
entry holds the source's name, pid/camid offsets and its own protocol, so that evaluate can score each
source on its own query/gallery. Sources whose protocol has per-query galleries (CUHK-SYSU) or differs
in name cannot be combined.

Where the sources are read from (`source_root`): `<raw>/<source>` first, so the one layout that works
everywhere is a folder `data/raw/market1501+msmt17/` holding `market1501/` and `msmt17/`: dvc.yaml's
preprocess dep `data/raw/${item}` then versions both (`dvc add data/raw/market1501+msmt17`), and
run-local's `--raw-root` and the data_repo fetch find it under the entry's name. Failing that, the
siblings `data/raw/market1501` and `data/raw/msmt17` are read (handy with the CLI); DVC does not see
those as deps of the entry (nor does it follow symlinked folders), so for a DVC run either use the
folder above or add `data/raw/<source>` for each source to the preprocess stage's deps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .base import DatasetError, Item, Splits

SEPARATOR = "+"
SPLIT_NAMES = ("train", "query", "gallery")


def is_combined(name: str) -> bool:
    """True for an entry joining several datasets, e.g. 'market1501+msmt17'."""
    return SEPARATOR in name


def source_names(name: str) -> list[str]:
    """'market1501+msmt17' -> ['market1501', 'msmt17']; DatasetError on an empty or repeated part."""
    parts = name.split(SEPARATOR)
    if any(not p.strip() for p in parts) or len(set(parts)) != len(parts):
        raise DatasetError(
            f"dataset '{name}': a combined entry joins distinct dataset names with '+', "
            "e.g. 'market1501+msmt17'"
        )
    return parts


def source_root(raw_dir: Path, name: str) -> Path:
    """The raw folder of one source: `<raw_dir>/<name>` if it exists, else `<raw_dir>/../<name>` (so that
    `data/raw/market1501+msmt17` reads data/raw/market1501 and data/raw/msmt17)."""
    raw_dir = Path(raw_dir)
    for candidate in (raw_dir / name, raw_dir.parent / name):
        if candidate.exists():
            return candidate
    raise DatasetError(
        f"{raw_dir / name}: raw folder of combined source '{name}' not found (also looked in "
        f"{raw_dir.parent / name}); put each source's raw data in data/raw/<name>"
    )


def _span(splits: Splits, attr: str) -> int:
    """1 + the largest non-negative pid (attr='pid') or camid over all splits; 0 when there is none."""
    values = [getattr(i, attr) for s in SPLIT_NAMES for i in getattr(splits, s)]
    return max((v for v in values if v >= 0), default=-1) + 1


def _shift(items: list[Item], name: str, pid_offset: int, cam_offset: int) -> list[Item]:
    """Items with offset pids (junk pids < 0 kept) and camids; the manifest source gets a 'name/' prefix."""
    return [
        replace(
            i,
            pid=i.pid + pid_offset if i.pid >= 0 else i.pid,
            camid=i.camid + cam_offset,
            source=f"{name}/{i.source or i.path.name}",
        )
        for i in items
    ]


def _check_protocols(parts: Sequence[tuple[str, Splits]]) -> str:
    """The common protocol name; DatasetError when the sources cannot share one evaluation."""
    for name, s in parts:
        if "galleries" in s.protocol:
            raise DatasetError(f"dataset '{name}': per-query galleries cannot be combined with other sets")
    names = {str(s.protocol.get("name", "market")) for _, s in parts}
    if len(names) != 1:
        raise DatasetError(
            f"combined sources {[n for n, _ in parts]} have different protocols {sorted(names)}; "
            "combine datasets evaluated under the same protocol"
        )
    return names.pop()


def combine(parts: Sequence[tuple[str, Splits]]) -> Splits:
    """Join parsed sources (in order) into one Splits with disjoint pids and per-source cameras."""
    common = _check_protocols(parts)
    joined: dict[str, list[Item]] = {s: [] for s in SPLIT_NAMES}
    skipped, sources, notes = [], [], []
    pid_offset = cam_offset = 0
    for name, s in parts:
        for split in SPLIT_NAMES:
            joined[split] += _shift(getattr(s, split), name, pid_offset, cam_offset)
        skipped += s.skipped
        notes += [f"{name}: {n}" for n in s.protocol.get("notes", [])]
        sources.append(
            {
                "name": name,
                "pid_offset": pid_offset,
                "camid_offset": cam_offset,
                "protocol": dict(s.protocol),
            }
        )
        pid_offset += _span(s, "pid")
        cam_offset += _span(s, "camid")
    junk = sum(int(s.protocol.get("junk_dropped", 0)) for _, s in parts)
    protocol: dict[str, Any] = {"name": common, "junk_dropped": junk, "sources": sources}
    if notes:
        protocol["notes"] = notes
    return Splits(joined["train"], joined["query"], joined["gallery"], skipped, protocol)


def parse(name: str, raw_dir: Path, work_dir: Path, parse_one: Callable[[str, Path, Path], Splits]) -> Splits:
    """Parse every source of `name` with parse_one(source, root, work_dir/source) and combine them."""
    roots = [(source, source_root(raw_dir, source)) for source in source_names(name)]  # all found first
    return combine([(source, parse_one(source, root, Path(work_dir) / source)) for source, root in roots])
