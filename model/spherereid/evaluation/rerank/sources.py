"""Where re-ranking reads its base distances: the features, or three precomputed matrices.

Re-ranking works on the (N, N) matrix D of all N = Q + G items, queries first. A source never builds
it: it yields blocks of rows, single entries (for the few pairs the sparse algorithm needs) and the
query x gallery block. Row i of the re-ranking's "original distance" is column i of D (D is symmetric
for features; for given matrices the column is read, as the dense algorithm's transpose does).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..distances import METRICS, GalleryDistances, as_features
from ..errors import MetricsError

# Pairs per vectorised batch in FeatureSource.pairs: two (batch, D) gathers of float32 (64 MB each at
# D = 1024).
PAIR_BATCH = 1 << 14


class DistanceSource(Protocol):
    """What re-ranking reads from a source of D (N = num_items, queries first); a source whose D is
    symmetric also offers ``block`` and sets ``symmetric = True`` (see ``reciprocal.nearest_neighbours``)."""

    num_query: int
    num_items: int

    def rows(self, a: int, b: int) -> torch.Tensor: ...

    def query_gallery(self, a: int, b: int) -> torch.Tensor: ...

    def pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor: ...


class FeatureSource:
    """D from features: qf (Q, d) and gf (G, d) stacked; the evaluation's own metric (cosine: 1 - q.g on
    unit vectors)."""

    symmetric = True  # D[i, j] = D[j, i]: the neighbour pass computes each pair once

    def __init__(self, qf: torch.Tensor, gf: torch.Tensor, metric: str = "cosine") -> None:
        if metric not in METRICS:
            raise MetricsError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        self.metric = metric
        self.num_query = int(qf.shape[0])
        self.feats = torch.cat([as_features(qf, "qf"), as_features(gf, "gf")])  # (N, d)
        self.num_items = int(self.feats.shape[0])
        self._all = GalleryDistances(self.feats, metric)
        self._gallery = GalleryDistances(self.feats[self.num_query :], metric)
        norms = torch.linalg.vector_norm(self.feats, dim=1)
        if metric == "cosine":
            self._aux = torch.where(norms > 0, 1.0 / norms.clamp(min=1e-30), torch.zeros_like(norms))
            self._one = torch.ones(1, 1)
        else:
            self._aux = norms * norms

    def rows(self, a: int, b: int) -> torch.Tensor:
        """(b - a, N) float32: D[a:b, :]."""
        return self._all(self.feats[a:b])

    def block(self, a: int, b: int, c: int, e: int) -> torch.Tensor:
        """(b - a, e - c) float32: D[a:b, c:e]. Cosine: 1 - q.g of the unit rows, in one GEMM."""
        if self.metric != "cosine":
            return GalleryDistances(self.feats[c:e], self.metric)(self.feats[a:b])
        rows = self.feats[a:b] * self._aux[a:b, None]
        cols = rows if (a, b) == (c, e) else self.feats[c:e] * self._aux[c:e, None]
        return torch.addmm(self._one, rows, cols.T, alpha=-1.0)

    def query_gallery(self, a: int, b: int) -> torch.Tensor:
        """(b - a, G) float32: D between queries a..b-1 and every gallery item."""
        return self._gallery(self.feats[a:b])

    def pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(P,) float32: D[rows[p], cols[p]] for int64 index vectors (P,)."""
        out = torch.empty(rows.numel(), dtype=torch.float32)
        for s in range(0, rows.numel(), PAIR_BATCH):
            r, c = rows[s : s + PAIR_BATCH], cols[s : s + PAIR_BATCH]
            dot = (self.feats[r] * self.feats[c]).sum(dim=1)
            if self.metric == "cosine":
                out[s : s + PAIR_BATCH] = 1.0 - dot * self._aux[r] * self._aux[c]
            else:
                out[s : s + PAIR_BATCH] = (self._aux[r] + self._aux[c] - 2.0 * dot).clamp_(min=0.0).sqrt_()
        return out


class MatrixSource:
    """D from q_g (Q, G), q_q (Q, Q) and g_g (G, G) distance matrices (numpy or torch, any float)."""

    def __init__(self, q_g, q_q, g_g) -> None:
        self.q_g = _matrix(q_g, "q_g_dist")
        self.q_q = _matrix(q_q, "q_q_dist")
        self.g_g = _matrix(g_g, "g_g_dist")
        q, g = self.q_g.shape
        if self.q_q.shape != (q, q) or self.g_g.shape != (g, g):
            raise MetricsError(
                f"distance matrices disagree: q_g_dist {tuple(self.q_g.shape)} needs q_q_dist ({q}, {q}) "
                f"and g_g_dist ({g}, {g}), got {tuple(self.q_q.shape)} and {tuple(self.g_g.shape)}"
            )
        self.num_query, self.num_items = q, q + g

    def rows(self, a: int, b: int) -> torch.Tensor:
        """(b - a, N) float32: columns a..b-1 of D = [[q_q, q_g], [q_g^T, g_g]], transposed."""
        q = self.num_query
        parts = []
        if a < q:  # query columns of D: [q_q[:, i]; q_g[i, :]]
            qa, qb = a, min(b, q)
            parts.append(torch.cat([self.q_q[:, qa:qb].T, self.q_g[qa:qb]], dim=1))
        if b > q:  # gallery columns of D: [q_g[:, j]; g_g[:, j]]
            ga, gb = max(a, q) - q, b - q
            parts.append(torch.cat([self.q_g[:, ga:gb].T, self.g_g[:, ga:gb].T], dim=1))
        return torch.cat(parts).contiguous() if len(parts) > 1 else parts[0].contiguous()

    def query_gallery(self, a: int, b: int) -> torch.Tensor:
        """(b - a, G) float32: q_g rows a..b-1 (row i of the final distances reads column i of D)."""
        return self.q_g[a:b].clone()

    def pairs(self, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """(P,) float32: D[cols[p], rows[p]] (entry (rows, cols) of the transposed D)."""
        q = self.num_query
        out = torch.empty(rows.numel(), dtype=torch.float32)
        row_q, col_q = rows < q, cols < q
        cases = (  # (rows, cols) block -> how to read D[col, row] from the given matrices
            (row_q & col_q, lambda r, c: self.q_q[c, r]),
            (row_q & ~col_q, lambda r, c: self.q_g[r, c - q]),
            (~row_q & col_q, lambda r, c: self.q_g[c, r - q]),
            (~row_q & ~col_q, lambda r, c: self.g_g[c - q, r - q]),
        )
        for mask, read in cases:
            sel = torch.nonzero(mask).view(-1)
            if sel.numel():
                out[sel] = read(rows[sel], cols[sel])
        return out


def _matrix(x, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 2:
        raise MetricsError(f"{name}: expected a 2-D distance matrix, got shape {tuple(t.shape)}")
    t = t.to(device="cpu", dtype=torch.float32)
    if t.numel() and not bool(torch.isfinite(t).all()):
        raise MetricsError(f"{name} contains NaN or infinite values")
    return t
