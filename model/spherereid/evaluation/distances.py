"""Query x gallery distance matrices (float32, torch) for ranking.

Metrics:
- ``cosine``: ``1 - <q/|q|, g/|g|>``; for L2-normalised features this is ``1 - q.g``. The norms are
  divided out of the dot products (no normalised copy of the gallery is made).
- ``euclidean``: ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))``.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import DistanceError

METRICS = ("cosine", "euclidean")


def as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """Features as a 2-D float32 CPU tensor (zero-copy when already float32)."""
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise DistanceError(f"{name}: expected a 2-D array (one row per image), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t.to(device="cpu", dtype=torch.float32)


class GalleryDistances:
    """Distances from chunks of queries to one fixed gallery; per-gallery terms computed once.

    gf: (G, D) features. ``__call__(qf_chunk (q, D)) -> (q, G)`` float32.
    """

    def __init__(self, gf: torch.Tensor | np.ndarray, metric: str = "cosine") -> None:
        if metric not in METRICS:
            raise DistanceError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
        self.metric = metric
        self.gf = as_features(gf, "gallery features")
        if metric == "cosine":
            self._g_term = -_inverse_norms(self.gf)  # negated: 1 - sim * inv_g in two in-place passes
        else:
            self._g_term = (self.gf * self.gf).sum(dim=1) if len(self.gf) else self.gf.new_zeros(0)

    def __call__(self, qf: torch.Tensor) -> torch.Tensor:
        qf = as_features(qf, "query features")
        if qf.shape[1] != self.gf.shape[1]:
            raise DistanceError(
                f"feature dimensions differ: query {qf.shape[1]} vs gallery {self.gf.shape[1]}"
            )
        if self.metric == "cosine":
            # Raw dot products first (exact for small-integer features, so chunking cannot change them).
            sim = qf @ self.gf.T  # (q, G)
            return sim.mul_(_inverse_norms(qf)[:, None]).mul_(self._g_term[None, :]).add_(1.0)
        d2 = torch.addmm(self._g_term[None, :], qf, self.gf.T, beta=1.0, alpha=-2.0)  # (q, G)
        d2.add_((qf * qf).sum(dim=1)[:, None])
        return d2.clamp_(min=0.0).sqrt_()


def _inverse_norms(x: torch.Tensor) -> torch.Tensor:
    """1/|x_i| per row; zero rows get 0 (distance 1 to everything under cosine)."""
    norms = torch.linalg.vector_norm(x, dim=1)
    return torch.where(norms > 0, 1.0 / norms.clamp(min=1e-30), torch.zeros_like(norms))


def pairwise_distance(
    qf: torch.Tensor | np.ndarray, gf: torch.Tensor | np.ndarray, metric: str = "cosine"
) -> torch.Tensor:
    """Full distance matrix: qf (Q, D), gf (G, D) -> (Q, G) float32 tensor.

    Holds the whole (Q, G) matrix; for large sets use ``metrics.evaluate_features`` / ``metrics.top_k``,
    which work chunk by chunk.
    """
    return GalleryDistances(gf, metric)(as_features(qf, "query features"))
