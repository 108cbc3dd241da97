"""Artifacts gathered from a fan-out (KFP's dsl.Collected lists), matched by their "dataset" metadata.

KFP hands a task every iteration's artifact as one list; which iteration made which is read from the
metadata the producing component set (preprocess, train and evaluate all set "dataset"), never from the
list position. The library never imports kfp: an artifact is given here as (path, metadata).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Item = tuple[str | Path, Mapping[str, Any]]


class CollectedError(ValueError):
    """A collected artifact list that cannot be matched by dataset: the message names the artifact."""


def by_dataset(items: Iterable[Item], what: str, key: str = "dataset") -> dict[str, Path]:
    """`[(path, metadata), ...]` -> `{metadata[key]: path}`; a missing or repeated name is an error."""
    out: dict[str, Path] = {}
    for path, metadata in items:
        name = str(metadata.get(key) or "")
        if not name:
            raise CollectedError(
                f"{path}: this {what} artifact has no '{key}' metadata; its component must set it"
            )
        if name in out:
            raise CollectedError(f"{what} artifacts {out[name]} and {path} both say {key} '{name}'")
        out[name] = Path(path)
    return out


def pick(items: Iterable[Item], name: str, what: str) -> Path:
    """The path of the one artifact of dataset `name` among `items`."""
    found = by_dataset(items, what)
    if name not in found:
        raise CollectedError(
            f"no {what} artifact of dataset '{name}' among those collected ({', '.join(sorted(found))})"
        )
    return found[name]


def link_datasets(dirs: Mapping[str, Path], root: Path) -> Path:
    """`root/<name>` -> `dirs[name]` (symbolic links): the `<prepared_root>/<dataset>` layout the
    cross-evaluate stage reads, made from artifacts that live anywhere."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, path in dirs.items():
        (root / name).symlink_to(Path(path).resolve(), target_is_directory=True)
    return root
