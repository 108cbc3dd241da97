"""The ranked-list figure of one search query (matplotlib, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

MATCH_COLOURS = {True: "#1a9850", False: "#d73027"}


def plot_search(
    query: np.ndarray,
    gallery: Sequence[np.ndarray],
    *,
    query_label: str,
    labels: Sequence[str],
    matches: Sequence[bool | None],
    path: Path,
) -> Path:
    """Query (H, W, 3) uint8, then its top-k gallery images with their labels; a known match is framed
    green, a known non-match red, unknown identities get no frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(gallery)
    fig, axes = plt.subplots(1, k + 1, figsize=(1.1 * (k + 1), 2.6), squeeze=False)
    panels = [(query, f"query\n{query_label}".rstrip(), None)] + list(zip(gallery, labels, matches))
    for ax, (image, label, match) in zip(axes[0], panels):
        ax.imshow(image)
        ax.set_title(label, fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            if match is None:
                spine.set_visible(match is None and label.startswith("query"))
            else:
                spine.set_edgecolor(MATCH_COLOURS[match])
                spine.set_linewidth(3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
