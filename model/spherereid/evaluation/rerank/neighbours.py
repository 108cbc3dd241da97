"""The k nearest items of every item under the re-ranking's original distance, in one chunked pass.

od[i, j] = D[j, i]**2 / max_l D[l, i]**2 (column i of D, squared, over its maximum). The lists order by
od, ties to the lower item index. Two passes, the same result:
- by rows (any source): blocks of rows of D, ``chunk_elements // N`` rows at a time;
- by tiles (sources with a symmetric D, i.e. features): each (I, J) tile with I <= J is computed once
  and serves rows I and, transposed, rows J; running top-k lists are merged tile by tile. It does half
  the distance products of the row pass.
"""

from __future__ import annotations

import math

import torch

from ...progress import tqdm
from ..ranking import top_k_chunk

NO_ITEM = torch.iinfo(torch.int64).max  # key of an empty slot in a running top-k list


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
