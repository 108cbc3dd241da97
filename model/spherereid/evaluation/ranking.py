"""The ranking engine: ranks of the true matches for a chunk of queries, without sorting the gallery.

Tie rule (everywhere): the gallery is ordered by distance ascending, equal distances by gallery index
ascending -- the order of a stable sort, and of MATLAB's ``sort`` in the official Market-1501 code.

For a chunk of queries (q, G) the engine
1. reads the distances of each query's same-identity items (few per query) and takes ``t_max``, the
   distance of its farthest true match;
2. marks the candidates ``d <= t_max`` (one vectorised pass over the chunk); junk items (gallery pid -1)
   and same-identity items of the query's own camera are unmarked;
3. sorts only the candidates by (query, distance, gallery index). A true match's position among its
   query's candidates is its rank: every visible item ahead of it is a candidate.

Cost: O(q*G) elementwise work plus a sort of the candidates, i.e. of the items ranked at or above the
last true match -- a small fraction of the gallery for a trained model. Rows where that fraction is
large (weak or random features) are ranked by ``binned_ranks`` instead: a per-row histogram of the
distances, exact and O(G) per row, with only the items sharing a bin with a true match sorted.
"""

from __future__ import annotations

import torch

# Largest query x gallery chunk (elements) held at once: 2**26 float32 = 256 MB, plus its masks and
# temporaries (about 1 GB at worst). Large enough that each pass over the gallery features serves 64+
# queries when the gallery has a million items.
CHUNK_ELEMENTS = 1 << 26
# A row whose candidates exceed 1/HARD_ROW_DIVISOR of the gallery is ranked by binning, not sorting.
HARD_ROW_DIVISOR = 8
# Value bins per row in the binned path.
BINS = 4096


def rows_per_chunk(query_chunk: int, num_gallery: int) -> int:
    """Queries per chunk: ``query_chunk``, capped so a chunk holds at most CHUNK_ELEMENTS distances."""
    return max(1, min(int(query_chunk), CHUNK_ELEMENTS // max(1, num_gallery)))


def sort_candidates(
    dist: torch.Tensor, cand: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Order the marked entries of a chunk by (row, distance, column).

    dist: (q, G) float32; cand: (q, G) bool. Returns rows (N,), cols (N,) and 0-based position of each
    entry within its row (N,), all int64, sorted by row, then distance, then column.
    """
    rows, cols = cand.nonzero(as_tuple=True)  # row-major: columns ascending within a row
    if rows.numel() == 0:
        return rows, cols, rows.clone()
    # Order-preserving integer image of float32 (+0.0 folds -0.0 into 0.0), joined with the row index in
    # one int64 key; a stable sort keeps the column order among equal distances.
    bits = (dist[rows, cols] + 0.0).view(torch.int32).to(torch.int64)
    bits = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF) + (1 << 31)
    order = torch.sort((rows << 32) | bits, stable=True).indices
    rows, cols = rows[order], cols[order]
    counts = torch.bincount(rows, minlength=dist.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(rows.numel()) - starts[rows]
    return rows, cols, position


def hit_ranks(
    dist: torch.Tensor,
    cand: torch.Tensor,
    t_max: torch.Tensor,
    positive: torch.Tensor,
    idx: torch.Tensor,
    is_hit,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks of the true matches of each row of dist (q, G).

    cand: (q, G) visible items with d <= t_max (true matches included); t_max: (q,); positive / idx:
    (q, M) mask and gallery index of each row's true matches; is_hit(rows, cols) -> bool for candidates.
    Rows with few candidates sort them (``sort_candidates``); rows where more than about
    1/HARD_ROW_DIVISOR of the gallery are candidates use ``binned_ranks`` (same result, O(G) per row).
    Returns (rows, ranks), sorted by row then rank.
    """
    # Candidate count per row, estimated on about 1024 evenly spaced columns (it only picks the path).
    stride = max(1, dist.shape[1] // 1024)
    num = cand[:, ::stride].sum(dim=1, dtype=torch.int32).to(torch.float64) * stride
    hard = num * HARD_ROW_DIVISOR > dist.shape[1]
    if not bool(hard.any()):
        rows, cols, position = sort_candidates(dist, cand)
        hit = is_hit(rows, cols)
        return rows[hit], position[hit]
    parts = []
    if not bool(hard.all()):
        rows, cols, position = sort_candidates(dist, cand & ~hard[:, None])
        hit = is_hit(rows, cols)
        parts.append((rows[hit], position[hit]))
    hard_rows = torch.nonzero(hard).view(-1)
    step = ((1 << 24) - 1) // (BINS + 1)
    for start in range(0, hard_rows.numel(), step):
        sel = hard_rows[start : start + step]
        whole = sel.numel() == dist.shape[0]  # the whole chunk: no copy

        def take(t: torch.Tensor, sel: torch.Tensor = sel, whole: bool = whole) -> torch.Tensor:
            return t if whole else t[sel]

        pr, pc = take(positive).nonzero(as_tuple=True)
        hit_fn = is_hit_rows(is_hit, sel)
        rows, ranks = binned_ranks(take(dist), take(cand), take(t_max), pr, take(idx)[pr, pc], hit_fn)
        parts.append((sel[rows], ranks))
    rows = torch.cat([p[0] for p in parts])
    ranks = torch.cat([p[1] for p in parts])
    order = torch.sort((rows << 32) | ranks, stable=True).indices
    return rows[order], ranks[order]


def is_hit_rows(is_hit, row_map: torch.Tensor):
    """is_hit for a subset of rows: local row r is row row_map[r] of the chunk."""
    return lambda rows, cols: is_hit(row_map[rows], cols)


def top_k_chunk(dist: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First k gallery items per row of dist (q, G) under the tie rule -> indices (q, k), distances."""
    kth = torch.topk(dist, k, dim=1, largest=False, sorted=True).values[:, -1]
    rows, cols, position = sort_candidates(dist, dist <= kth[:, None])
    keep = position < k
    indices = cols[keep].view(dist.shape[0], k)
    return indices, dist.gather(1, indices)


def binned_ranks(
    dist: torch.Tensor,
    cand: torch.Tensor,
    t_max: torch.Tensor,
    pos_rows: torch.Tensor,
    pos_cols: torch.Tensor,
    is_hit,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks of the true matches (pos_rows, pos_cols) among the candidates cand (q, G), in O(q*G).

    Each row's range [min d, t_max] is cut into BINS equal bins; the bin index is a non-decreasing
    function of the distance, so items in lower bins are strictly closer than a true match. Those are
    counted with one histogram; only the items sharing a bin with a true match are sorted exactly.
    Requires q * (BINS + 1) < 2**24 (row offsets are added in float32). Returns (rows, ranks) of the hits.
    """
    q, num_g = dist.shape
    width = BINS + 1
    if q * width >= 1 << 24:
        raise ValueError(f"binned_ranks: too many rows ({q}) for {BINS} bins")
    lo = dist.amin(dim=1)
    span = t_max - lo
    scale = torch.where(span > 0, BINS / span, torch.zeros_like(span))
    scale = torch.where(torch.isfinite(scale), scale, torch.zeros_like(scale))
    key = (dist - lo[:, None]).mul_(scale[:, None]).nan_to_num_(nan=0.0).floor_().clamp_(0, BINS - 1)
    key.masked_fill_(~cand, BINS)  # non-candidates: overflow bin, never counted
    key.add_(torch.arange(q, dtype=torch.float32)[:, None] * width)  # (row, bin) as one exact integer
    flat = key.to(torch.int32).view(-1)
    del key
    counts = torch.bincount(flat, minlength=q * width).view(q, width)
    below = (torch.cumsum(counts, dim=1) - counts).view(-1)  # candidates of the row in lower bins
    shared = torch.zeros(q * width, dtype=torch.bool)
    shared[flat[pos_rows * num_g + pos_cols].to(torch.int64)] = True
    shared.view(q, width)[:, BINS] = False
    mark = shared.index_select(0, flat).view(q, num_g)
    rows, cols, _ = sort_candidates(dist, mark)
    group = flat[rows * num_g + cols].to(torch.int64)  # sorted: bins follow distances within a row
    in_group = torch.arange(group.numel()) - torch.searchsorted(group, group)
    hit = is_hit(rows, cols)
    return rows[hit], (below[group] + in_group)[hit]
