"""The sparse half of k-reciprocal re-ranking: k-reciprocal sets and the encoding V (lists from neighbours).

Notation (Zhong et al., CVPR 2017): N items, queries first; ``od[i, j]`` the original distance, i.e.
the squared base distance of column i of D divided by that column's maximum. ``nn[i]`` lists the items
by ascending ``od[i]`` (tie rule: item index), item i itself usually first.

- R(i, k) = {j in nn[i, :k+1] : i in nn[j, :k+1]}, the k-reciprocal neighbours;
- R*(i) = R(i, k1), plus R(c, round(k1/2)) for each c in R(i, k1) sharing more than 2/3 of its
  members with R(i, k1) (round half to even, as Python's round);
- V[i, j] = exp(-od[i, j]) / sum over R*(i) for j in R*(i), 0 elsewhere;
- query expansion (k2 > 1): V[i] <- the mean of V[nn[i, t]] for t < k2.

Memory: O(N * k1) -- nn, and V as CSR; no (N, N) matrix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .neighbours import safe_maxima

logger = logging.getLogger(__name__)

# Rows per block in the vectorised set operations (a block holds about rows * 21 * 11 * 21 booleans
# for k1 = 20).
SET_BLOCK = 2048


@dataclass
class SparseRows:
    """CSR matrix with N rows and N columns: row i holds col[ptr[i]:ptr[i+1]] (ascending) and val."""

    ptr: torch.Tensor  # (N + 1,) int64
    col: torch.Tensor  # (nnz,) int64
    val: torch.Tensor  # (nnz,) float32

    @property
    def num_rows(self) -> int:
        return self.ptr.numel() - 1

    def row_ids(self) -> torch.Tensor:
        """(nnz,) int64: the row of each stored entry."""
        return torch.repeat_interleave(torch.arange(self.num_rows), self.ptr.diff())

    def entries(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows a..b-1 as (row, col, val) triples, row-major."""
        s, e = int(self.ptr[a]), int(self.ptr[b])
        rows = torch.repeat_interleave(torch.arange(a, b), self.ptr[a : b + 1].diff())
        return rows, self.col[s:e], self.val[s:e]


def unique_keys(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.unique(keys, return_inverse=True) for 1-D int64 keys, through one sort (several times faster
    on the CPU): the sorted distinct keys and, for each key, its position among them."""
    ordered, order = torch.sort(keys)
    new = torch.ones_like(ordered, dtype=torch.bool)
    new[1:] = ordered[1:] != ordered[:-1]
    inverse = torch.empty_like(order)
    inverse[order] = torch.cumsum(new, 0) - 1
    return ordered[new], inverse


def reciprocal_mask(nn: torch.Tensor) -> torch.Tensor:
    """(N, k) bool: whether nn[i, t] counts i among its own first k neighbours."""
    n, k = nn.shape
    mask = torch.empty((n, k), dtype=torch.bool)
    for a in range(0, n, SET_BLOCK * 8):
        b = min(a + SET_BLOCK * 8, n)
        back = nn[nn[a:b]]  # (rows, k, k)
        mask[a:b] = (back == torch.arange(a, b)[:, None, None]).any(dim=2)
    return mask


def expanded_sets(
    nn: torch.Tensor, nn_od: torch.Tensor, k1: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """R*(i) for every item: (rows, cols) int64 of the pairs (i, j in R*(i)), sorted by row then col,
    and od[rows, cols] (float32) where j is among nn[i] (NaN for the others, to be computed)."""
    n = nn.shape[0]
    kr = min(k1 + 1, nn.shape[1])
    kh = min(int(round(k1 / 2)) + 1, nn.shape[1])
    near = nn[:, :kr].contiguous()
    in_r = reciprocal_mask(near)  # (N, kr): near[i, t] in R(i, k1)
    half = nn[:, :kh].contiguous()
    in_h = reciprocal_mask(half)  # (N, kh): half[c, s] in R(c, k1/2)
    keys, known = [], []
    for a in range(0, n, SET_BLOCK):
        b = min(a + SET_BLOCK, n)
        cand, ok = near[a:b], in_r[a:b]  # (rows, kr): R(i) as padded list + mask
        h, h_ok = half[cand], in_h[cand]  # (rows, kr, kh): R(c, k1/2) of each candidate c
        same = h[..., None] == cand[:, None, None, :]  # (rows, kr, kh, kr): h[i, t, s] is near[i, u]
        shared = (same & ok[:, None, None, :]).any(dim=3) & h_ok
        size = h_ok.sum(dim=2, dtype=torch.int64).to(torch.float64)
        accept = ok & (shared.sum(dim=2, dtype=torch.int64).to(torch.float64) > (2.0 / 3.0) * size)
        rows = torch.arange(a, b)[:, None]
        own = (rows * n + cand)[ok]
        take = accept[:, :, None] & h_ok
        extra = (rows[:, :, None] * n + h)[take]
        od = nn_od[a:b, :kr]
        h_od = od[:, None, :].expand(-1, kr, -1).gather(2, same.to(torch.uint8).argmax(dim=3))
        h_od = h_od.masked_fill_(~same.any(dim=3), float("nan"))[take]
        key, inverse = unique_keys(torch.cat([own, extra]))  # by row, then col
        keys.append(key)
        known.append(
            torch.empty(key.numel(), dtype=torch.float32).scatter_(0, inverse, torch.cat([od[ok], h_od]))
        )
    key = torch.cat(keys)
    return key // n, key % n, torch.cat(known)


def encode(
    source, nn: torch.Tensor, nn_od: torch.Tensor, maxima: torch.Tensor, k1: int, k2: int
) -> SparseRows:
    """V after query expansion: Gaussian weights of od over R*(i), each row summing to 1, then (k2 > 1)
    averaged over the k2 nearest rows."""
    n = source.num_items
    rows, cols, od = expanded_sets(nn, nn_od, k1)
    todo = torch.nonzero(torch.isnan(od)).view(-1)  # members of R*(i) beyond nn[i]: read them from D
    base = source.pairs(rows[todo], cols[todo])
    od[todo] = base.mul_(base).div_(safe_maxima(maxima)[rows[todo]])
    weight = torch.exp(-od)
    totals = torch.zeros(n, dtype=torch.float32).index_add_(0, rows, weight)
    ptr = torch.zeros(n + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    v = SparseRows(ptr=ptr, col=cols, val=weight.div_(totals[rows]))
    logger.debug("re-ranking: %d items, %.1f k-reciprocal neighbours per item", n, cols.numel() / n)
    if k2 == 1:
        return v
    return query_expansion(v, nn[:, :k2])


def query_expansion(v: SparseRows, near: torch.Tensor) -> SparseRows:
    """Row i <- mean of rows near[i, :] of v; near (N, k2) int64."""
    n, k2 = near.shape
    counts = v.ptr.diff()
    cols, vals, lengths = [], [], torch.zeros(n, dtype=torch.int64)
    for a in range(0, n, SET_BLOCK):
        b = min(a + SET_BLOCK, n)
        src = near[a:b].reshape(-1)  # (rows * k2,) source rows
        length = counts[src]
        owner = torch.repeat_interleave(torch.arange(src.numel()), length)
        offset = torch.arange(owner.numel()) - (torch.cumsum(length, 0) - length)[owner]
        pos = v.ptr[src][owner] + offset
        key = (owner // k2 + a) * n + v.col[pos]
        uniq, inverse = unique_keys(key)  # sorted: by row, then col
        total = torch.zeros(uniq.numel(), dtype=torch.float32).index_add_(0, inverse, v.val[pos])
        cols.append(uniq % n)
        vals.append(total.div_(k2))
        lengths[a:b] = torch.bincount(uniq // n - a, minlength=b - a)
    ptr = torch.zeros(n + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(lengths, 0)
    return SparseRows(ptr=ptr, col=torch.cat(cols), val=torch.cat(vals))
