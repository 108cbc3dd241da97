"""The paper's reported Market-1501 figures (SphereReID, arXiv 1807.00537), beside which ablation.md puts
ours. Only numbers read in the paper's own text are here; any other cell is "not found", never a guess.

Found: the full method (network D, Sphere Softmax, warm-up, balanced sampling, ResNet-50, 256x128) reaches
94.4% rank-1 (abstract) and 83.6% mAP on Market-1501 (single query, no re-ranking; Fan et al. 2018,
arXiv 1807.00537, the comparison with the state of the art). The per-cell ablation figures (networks A-C,
plain softmax, no warm-up, random sampling) were not found in the text available to us.
"""

from __future__ import annotations

NOT_FOUND = "not found"
SOURCE = "SphereReID (Fan et al. 2018, arXiv 1807.00537), Market-1501, single query, no re-ranking"

# cell id -> {"rank1": percent, "mAP": percent}; a missing key is "not found"
PAPER_MARKET1501: dict[str, dict[str, float]] = {
    "D-sphere-warmup-balanced": {"rank1": 94.4, "mAP": 83.6},  # Fan et al. 2018, arXiv 1807.00537
}


def paper_value(cell_id: str, metric: str) -> str:
    """The paper's figure for a cell as text ("94.4%"), or "not found"."""
    value = PAPER_MARKET1501.get(cell_id, {}).get(metric)
    return NOT_FOUND if value is None else f"{value:.1f}%"
