"""The sparse core of k-reciprocal re-ranking: nearest neighbours, k-reciprocal sets, the encoding V and
the Jaccard distance through an inverted index. Memory: O(N * k1); no (N, N) matrix is ever held.

Notation (Zhong et al., CVPR 2017): N items, queries first; D the (N, N) base distances (``sources``);
``od[i, j]`` the original distance, i.e. the squared base distance of column i of D divided by that
column's maximum, ``od[i, j] = D[j, i]**2 / max_l D[l, i]**2``. ``nn[i]`` lists the items by ascending
``od[i]`` (tie rule: item index), item i itself usually first.

1. Neighbours (``nearest_neighbours``), in one chunked pass, the same result either way:
   - by rows (any source): blocks of rows of D, ``chunk_elements // N`` rows at a time;
   - by tiles (sources with a symmetric D, i.e. features): each (I, J) tile with I <= J is computed once
     and serves rows I and, transposed, rows J; running top-k lists are merged tile by tile. It does half
     the distance products of the row pass.
2. Sets and V (``encode``):
   - R(i, k) = {j in nn[i, :k+1] : i in nn[j, :k+1]}, the k-reciprocal neighbours;
   - R*(i) = R(i, k1), plus R(c, round(k1/2)) for each c in R(i, k1) sharing more than 2/3 of its
     members with R(i, k1) (round half to even, as Python's round);
   - V[i, j] = exp(-od[i, j]) / sum over R*(i) for j in R*(i), 0 elsewhere, stored as CSR;
   - query expansion (k2 > 1): V[i] <- the mean of V[nn[i, t]] for t < k2.
3. Jaccard (``InvertedIndex``): m = sum_k min(V[i, k], V[j, k]) for queries i and gallery items j, summed
   through the gallery rows of V by column, one chunk of queries at a time; jaccard = 1 - m / (2 - m).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from ...progress import tqdm
from ..ranking import top_k_chunk

logger = logging.getLogger(__name__)

NO_ITEM = torch.iinfo(torch.int64).max  # key of an empty slot in a running top-k list
# Rows per block in the vectorised set operations (a block holds about rows * 21 * 11 * 21 booleans
# for k1 = 20).
SET_BLOCK = 2048
# Query x gallery item pairs expanded at once through the inverted index (about 24 bytes each).
PAIR_BUDGET = 1 << 22


def nearest_neighbours(
    source, k: int, chunk_elements: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """nn (N, k) int64 by ascending od, od[i, nn[i]] (N, k) float32 and the column maxima of D**2 (N,).

    Holds about chunk_elements distances at a time.
    """
    if getattr(source, "symmetric", False):
        nn, squared, maxima = _tile_pass(source, k, chunk_elements)
        return nn, squared.div_(safe_maxima(maxima)[:, None]), maxima
    return _row_pass(source, k, chunk_elements)


def safe_maxima(maxima: torch.Tensor) -> torch.Tensor:
    """Column maxima with zeros (an item at distance 0 from everything) replaced by 1."""
    return torch.where(maxima > 0, maxima, torch.ones_like(maxima))


def nearest_k(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ranking.top_k_chunk`` (the k smallest of each row of d (rows, cols), ties to the lower column):
    one ``torch.topk`` of k + 1 where those values are distinct, the exact tie rule on the other rows."""
    kk = min(k + 1, d.shape[1])
    val, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
    tied = torch.nonzero((val[:, 1:] == val[:, :-1]).any(dim=1)).view(-1)
    idx, val = idx[:, :k].contiguous(), val[:, :k].contiguous()
    if tied.numel():
        idx[tied], val[tied] = top_k_chunk(d[tied], k)
    return idx, val


def _row_pass(source, k: int, chunk_elements: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = source.num_items
    step = max(1, int(chunk_elements) // n)
    nn = torch.empty((n, k), dtype=torch.int64)
    nn_od = torch.empty((n, k), dtype=torch.float32)
    maxima = torch.empty(n, dtype=torch.float32)
    starts = range(0, n, step)
    for a in tqdm(starts, desc="re-ranking: neighbours", unit="block", disable=None, leave=False):
        b = min(a + step, n)
        d = source.rows(a, b)
        d.mul_(d)
        maxima[a:b] = d.amax(dim=1)
        d.div_(safe_maxima(maxima[a:b])[:, None])
        nn[a:b], nn_od[a:b] = nearest_k(d, k)
    return nn, nn_od, maxima


def _tile_pass(source, k: int, chunk_elements: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """nn (N, k), D[i, nn[i]]**2 (N, k) and the maxima of D**2, from the tiles I <= J of a symmetric D."""
    n = source.num_items
    side = max(1, math.isqrt(max(1, int(chunk_elements) // 2)))  # a tile and its transposed copy
    keys = torch.full((n, k), NO_ITEM, dtype=torch.int64)
    maxima = torch.zeros(n, dtype=torch.float32)
    tiles = [(a, c) for a in range(0, n, side) for c in range(a, n, side)]
    for a, c in tqdm(tiles, desc="re-ranking: neighbours", unit="tile", disable=None, leave=False):
        b, e = min(a + side, n), min(c + side, n)
        d = source.block(a, b, c, e)  # (b - a, e - c): D[a:b, c:e]
        d.mul_(d)
        maxima[a:b] = torch.maximum(maxima[a:b], d.amax(dim=1))
        keys[a:b] = _merge(keys[a:b], d, c, k)
        if c != a:
            maxima[c:e] = torch.maximum(maxima[c:e], d.amax(dim=0))
            keys[c:e] = _merge(keys[c:e], d.T.contiguous(), a, k)
    squared = (keys >> 32).to(torch.int32).view(torch.float32)
    return keys & 0xFFFFFFFF, squared.contiguous(), maxima


def _merge(keys: torch.Tensor, d: torch.Tensor, first: int, k: int) -> torch.Tensor:
    """Running lists keys (rows, k) merged with the k nearest columns of d (rows, cols), whose column c is
    item first + c. A key is (bits of the non-negative float32 squared distance) << 32 | item, so integer
    order is (distance, item) order."""
    kk = min(k, d.shape[1])
    idx, val = nearest_k(d, kk)
    new = (val.view(torch.int32).to(torch.int64) << 32) | (idx + first)
    return torch.topk(torch.cat([keys, new], dim=1), k, dim=1, largest=False, sorted=True).values


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
