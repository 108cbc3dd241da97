"""Search a gallery folder with query images: top-k per query as results.json plus a ranked-list PNG.

Distances are cosine distances (1 - q.g) between L2-normalised embeddings from the shared chain.
Market-style names (`PPPP_cC...`) give pid and camera; when both sides are known, same pid is a match.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.datasets.naming import parse_name
from ..data.imageio import BadImage
from ..evaluation.metrics import top_k
from .gallery_index import GalleryIndex, Skipped, embed_files, read_file
from .model_source import ResolvedModel
from .search_plot import plot_search

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
PLOT_FILE = "ranked_list.png"


class SearchError(ValueError):
    """The search cannot run (no usable query, bad --top)."""


@dataclass(frozen=True)
class Match:
    """One gallery image in a query's ranked list."""

    rank: int
    path: str
    distance: float
    pid: int | None
    camid: int | None
    match: bool | None  # same pid as the query; None when either pid is unknown


@dataclass(frozen=True)
class QueryResult:
    """A query's ranked list and where it was written."""

    query: str
    pid: int | None
    camid: int | None
    matches: list[Match]
    results_path: Path
    plot_path: Path


def identity(path: str | Path) -> tuple[int | None, int | None]:
    """(pid, camera number as written) from a Market-style basename, else (None, None)."""
    parsed = parse_name(Path(path).name)
    return parsed if parsed is not None else (None, None)


def _folder(i: int, query: Path) -> str:
    return f"q{i + 1:03d}_{query.stem}"


def search(
    model: ResolvedModel, index: GalleryIndex, queries: Sequence[Path], *, top: int, out_dir: Path
) -> tuple[list[QueryResult], list[Skipped]]:
    """Rank the indexed gallery for each query; write <out>/qNNN_<stem>/{results.json, ranked_list.png}."""
    if top < 1:
        raise SearchError(f"--top must be >= 1, got {top}")
    data, names, qf, skipped = _embed_queries(model, queries)
    indices, distances = top_k(qf, index.embeddings, min(top, len(index.paths)), metric="cosine")
    results = []
    for i, name in enumerate(names):
        qpid, qcam = identity(name)
        matches = []
        for rank, (g, dist) in enumerate(zip(indices[i], distances[i]), start=1):
            rel = index.paths[int(g)]
            gpid, gcam = identity(rel)
            same = None if qpid is None or gpid is None else gpid == qpid
            matches.append(Match(rank, str(index.root / rel), float(dist), gpid, gcam, same))
        folder = Path(out_dir) / _folder(i, Path(name))
        results.append(_write_result(model, index, name, data[name], matches, folder))
    return results, skipped


def _embed_queries(
    model: ResolvedModel, queries: Sequence[Path]
) -> tuple[dict[str, bytes], list[str], np.ndarray, list[Skipped]]:
    """The queries' bytes by name, the names embedded, their embeddings and the queries skipped (logged);
    SearchError when none is usable."""
    files, skipped = [], []
    for q in map(Path, queries):
        try:
            files.append((str(q), read_file(q)))
        except BadImage as exc:
            skipped.append(Skipped(str(q), str(exc)))
    names, qf, bad = embed_files(model, files, desc="embedding queries")
    skipped += bad
    for item in skipped:
        log.warning("query %s skipped: %s", item.path, item.reason)
    if not names:
        raise SearchError(
            f"no usable query image ({len(skipped)} skipped: {skipped[0].reason if skipped else ''})"
        )
    return dict(files), names, qf, skipped


def _write_result(
    model: ResolvedModel, index: GalleryIndex, name: str, image: bytes, matches: list[Match], folder: Path
) -> QueryResult:
    """Write one query's results.json and ranked-list PNG into `folder`."""
    qpid, qcam = identity(name)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "query": name,
        "pid": qpid,
        "camid": qcam,
        "model": model.label,
        "gallery": str(index.root),
        "metric": "cosine distance (1 - cosine similarity)",
        "results": [asdict(m) for m in matches],
    }
    results_path = folder / RESULTS_FILE
    results_path.write_text(json.dumps(record, indent=2) + "\n")
    plot_path = plot_search(
        model.chain.stored(image),
        [model.chain.stored(Path(m.path).read_bytes()) for m in matches],
        query_label=_label(qpid, qcam),
        labels=[f"#{m.rank} d={m.distance:.3f}\n{_label(m.pid, m.camid)}".rstrip() for m in matches],
        matches=[m.match for m in matches],
        path=folder / PLOT_FILE,
    )
    return QueryResult(name, qpid, qcam, matches, results_path, plot_path)


def _label(pid: int | None, camid: int | None) -> str:
    return "" if pid is None else f"pid {pid} c{camid}"
