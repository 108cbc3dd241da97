"""The standard protocol (Market-1501, DukeMTMC-reID, CUHK03-NP): one shared gallery, camera filtering, junk.

It decides which gallery items each query sees and which are its true matches; the ranking engine
(``evaluation.ranking``) finds their ranks chunk by chunk without sorting the gallery.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..ranking import hit_ranks
from ..results import HitAccumulator


class StandardProtocol:
    """Market-1501 / DukeMTMC-reID / CUHK03-NP rules for one gallery, ready to rank chunks of queries.

    Visible to query i: gallery items with pid != -1 that are not (same pid and same camera).
    True matches: same pid, other camera. Distractors (pid 0) are plain negatives.
    """

    def __init__(
        self,
        q_pids: np.ndarray,
        g_pids: np.ndarray,
        q_camids: np.ndarray,
        g_camids: np.ndarray,
    ) -> None:
        self.q_pids, self.q_camids = q_pids, q_camids
        self.g_pids_t = torch.from_numpy(g_pids)
        self.g_camids_t = torch.from_numpy(g_camids)
        self.junk = torch.from_numpy(np.flatnonzero(g_pids == -1))
        order = np.argsort(g_pids, kind="stable")
        order = order[g_pids[order] != -1]
        self.order = torch.from_numpy(order)
        self.uniq, self.starts, self.counts = np.unique(g_pids[order], return_index=True, return_counts=True)

    def _same_identity(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Gallery indices (q, M) of each query's same-pid items, padded, and a (q, M) validity mask."""
        qp = self.q_pids[a:b]
        if len(self.uniq) == 0:
            return torch.zeros((b - a, 0), dtype=torch.int64), torch.zeros((b - a, 0), dtype=torch.bool)
        pos = np.searchsorted(self.uniq, qp).clip(max=len(self.uniq) - 1)
        counts = np.where(self.uniq[pos] == qp, self.counts[pos], 0)
        offs = np.arange(int(counts.max()) if len(counts) else 0)
        inside = offs[None, :] < counts[:, None]
        flat = np.where(inside, self.starts[pos][:, None] + offs[None, :], 0)
        idx = self.order[torch.from_numpy(flat).reshape(b - a, len(offs))]
        return idx, torch.from_numpy(inside)

    def rank_chunk(self, dist: torch.Tensor, a: int, acc: HitAccumulator) -> None:
        """Rank queries a .. a+len(dist) against the gallery; dist: (q, G) float32. Adds to ``acc``."""
        b = a + dist.shape[0]
        idx, inside = self._same_identity(a, b)
        own_cam = torch.from_numpy(self.q_camids[a:b])[:, None]
        same_cam = self.g_camids_t[idx] == own_cam
        positive = inside & ~same_cam
        excluded = inside & same_cam
        t = dist.gather(1, idx).masked_fill(~positive, float("-inf"))
        t_max = t.max(dim=1).values if idx.shape[1] else dist.new_full((dist.shape[0],), float("-inf"))
        cand = dist <= t_max[:, None]
        if self.junk.numel():
            cand[:, self.junk] = False
        er, ec = excluded.nonzero(as_tuple=True)
        cand[er, idx[er, ec]] = False
        rows, ranks = hit_ranks(dist, cand, t_max, positive, idx, self._is_hit(a))
        acc.add(rows, ranks, dist.shape[0])

    def _is_hit(self, a: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        q_pids = torch.from_numpy(self.q_pids[a:])

        def is_hit(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            return self.g_pids_t[cols] == q_pids[rows]

        return is_hit
