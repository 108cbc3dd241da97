"""What the per-query protocols (CUHK03 classic, gallery subsets) share: numpy distance chunks to loop
over, and handing each chunk's true-match ranks to the accumulator. Tie rule as everywhere: distance,
then gallery index (stable sort)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..distances import GalleryDistances
from ..ranking import rows_per_chunk
from ..results import HitAccumulator


def distance_chunks(
    q: torch.Tensor, g: torch.Tensor, metric: str, query_chunk: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (first query index, (q, G) numpy distance chunk)."""
    distances = GalleryDistances(g, metric)
    step = rows_per_chunk(query_chunk, g.shape[0])
    for a in range(0, q.shape[0], step):
        yield a, distances(q[a : a + step]).numpy()


def add_rows(acc: HitAccumulator, rows: list[np.ndarray], ranks: list[np.ndarray], num_rows: int) -> None:
    """Add the (row, rank) pairs of one chunk of num_rows queries (rows without a pair: no match)."""
    if rows:
        acc.add(torch.from_numpy(np.concatenate(rows)), torch.from_numpy(np.concatenate(ranks)), num_rows)
    else:
        acc.add(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), num_rows)
