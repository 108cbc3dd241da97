"""The Jaccard half of re-ranking: m = sum_k min(V[i, k], V[j, k]) for queries i and gallery items j,
summed through an inverted index (the gallery rows of V by column), one chunk of queries at a time;
jaccard = 1 - m / (2 - m)."""

from __future__ import annotations

import torch

from .reciprocal import SparseRows

# Query x gallery item pairs expanded at once through the inverted index (about 24 bytes each).
PAIR_BUDGET = 1 << 22


class InvertedIndex:
    """The gallery rows of V by column: for each column k, the gallery items j with V[j, k] != 0."""

    def __init__(self, v: SparseRows, num_query: int) -> None:
        n = v.num_rows
        start = int(v.ptr[num_query])
        cols = v.col[start:]
        order = torch.sort(cols, stable=True).indices
        self.item = (v.row_ids()[start:] - num_query)[order]  # (nnz_g,) gallery index
        self.val = v.val[start:][order]
        self.ptr = torch.zeros(n + 1, dtype=torch.int64)
        self.ptr[1:] = torch.cumsum(torch.bincount(cols, minlength=n), 0)
        self.num_gallery = n - num_query

    def jaccard(
        self, rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, a: int, q: int
    ) -> torch.Tensor:
        """(q, G) float32 Jaccard distances of queries a..a+q-1 given their V entries (rows, cols, vals)."""
        g = self.num_gallery
        overlap = torch.zeros(q * g, dtype=torch.float32)
        length = self.ptr[cols + 1] - self.ptr[cols]
        ends = torch.cumsum(length, 0)
        s = 0
        while s < cols.numel():  # groups of entries expanding to about PAIR_BUDGET pairs
            base = int(ends[s - 1]) if s else 0
            e = max(s + 1, int(torch.searchsorted(ends, base + PAIR_BUDGET, right=True)))
            owner = torch.repeat_interleave(torch.arange(s, e), length[s:e])
            first = ends[owner] - length[owner] - base  # the entry's first pair in this group
            pos = self.ptr[cols[owner]] + torch.arange(owner.numel()) - first
            weight = torch.minimum(vals[owner], self.val[pos])
            overlap.index_add_(0, (rows[owner] - a) * g + self.item[pos], weight)
            s = e
        overlap = overlap.view(q, g)
        return overlap.div_(2.0 - overlap).neg_().add_(1.0)
