"""Figures people look at: training curves, the CMC curve, ranked lists (matplotlib, PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: Sequence, path: Path) -> Path:
    """Loss, accuracy and learning rate per epoch (history: EpochStats-like objects)."""
    plt = _pyplot()
    epochs = [h.epoch + 1 for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in zip(axes, ("loss", "accuracy", "lr"), ("loss", "train accuracy", "learning rate")):
        ax.plot(epochs, [getattr(h, key) for h in history], marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_cmc(
    cmc: Sequence[float], path: Path, title: str = "CMC", others: dict[str, Sequence[float]] | None = None
) -> Path:
    """Cumulative match characteristic: rank k -> fraction of queries matched within the top k.
    ``others``: further labelled curves (e.g. re-ranked) drawn on the same axes, with a legend."""
    plt = _pyplot()
    ranks = np.arange(1, len(cmc) + 1)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ranks, np.asarray(cmc) * 100, marker="o", ms=2, label="original")
    marks = [r for r in (1, 5, 10) if r <= len(cmc)]
    ax.scatter(marks, [cmc[r - 1] * 100 for r in marks], color="#d73027", zorder=3, s=18)
    summary = "\n".join(f"rank-{r}: {cmc[r - 1] * 100:.1f}%" for r in marks)
    for label, curve in (others or {}).items():
        ax.plot(np.arange(1, len(curve) + 1), np.asarray(curve) * 100, marker="s", ms=2, ls="--", label=label)
        summary += f"\n{label} rank-1: {curve[0] * 100:.1f}%"
    if others:
        ax.legend(loc="center right", fontsize=8)
    ax.text(0.97, 0.05, summary, transform=ax.transAxes, ha="right", va="bottom", fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9})  # fmt: skip
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title)
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_ranked_lists(
    query_images: np.ndarray,
    gallery_images: np.ndarray,
    ranked: np.ndarray,
    correct: np.ndarray,
    path: Path,
) -> Path:
    """One row per query: the query image, then its top-k gallery images framed green (same identity)
    or red. query_images (Q, H, W, 3) uint8, gallery_images indexable (G, H, W, 3), ranked (Q, k)
    gallery indices, correct (Q, k) bool."""
    plt = _pyplot()
    q, k = ranked.shape
    fig, axes = plt.subplots(q, k + 1, figsize=(1.0 * (k + 1), 2.0 * q), squeeze=False)
    for i in range(q):
        axes[i, 0].imshow(query_images[i])
        axes[i, 0].set_title("query", fontsize=7)
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(gallery_images[int(ranked[i, j])])
            colour = "#1a9850" if correct[i, j] else "#d73027"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
            ax.set_title(str(j + 1), fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def figures_html(folder: Path, names: Sequence[str]) -> str:
    """A self-contained HTML page with the PNGs `names` in `folder` embedded (base64), each headed."""
    import base64

    figures = [
        f'<h2>{name}</h2><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode((Path(folder) / name).read_bytes()).decode()}">'
        for name in names
    ]
    return "<!DOCTYPE html><html><body>" + "".join(figures) + "</body></html>\n"
