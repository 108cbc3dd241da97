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
    ax.text(
        0.97,
        0.05,
        summary,
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9},
    )
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title)
    ax.set_ylim(0, 101)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


GREEN, RED = (26, 152, 80), (215, 48, 39)  # same identity / another identity
FRAME, GAP = 3, 6  # pixels: the coloured frame round a gallery image, the space between images


def ranked_mosaic(
    query_images: np.ndarray, gallery_images: np.ndarray, ranked: np.ndarray, correct: np.ndarray
) -> np.ndarray:
    """(Q*(H+2F+GAP), (k+1)*(W+2F+GAP), 3) uint8 on white: per row the query (grey frame), then its
    top-k gallery images framed green (same identity) or red; F = FRAME. Shapes as plot_ranked_lists."""
    q, k = ranked.shape
    h, w = query_images.shape[1:3]
    th, tw = h + 2 * FRAME + GAP, w + 2 * FRAME + GAP
    canvas = np.full((q * th, (k + 1) * tw, 3), 255, dtype=np.uint8)
    for i in range(q):
        tiles = [(query_images[i], (128, 128, 128))]
        tiles += [(gallery_images[int(ranked[i, j])], GREEN if correct[i, j] else RED) for j in range(k)]
        for j, (image, colour) in enumerate(tiles):
            y, x = i * th, j * tw
            canvas[y : y + h + 2 * FRAME, x : x + w + 2 * FRAME] = colour
            canvas[y + FRAME : y + FRAME + h, x + FRAME : x + FRAME + w] = np.asarray(image)[:h, :w]
    return canvas


def plot_ranked_lists(
    query_images: np.ndarray,
    gallery_images: np.ndarray,
    ranked: np.ndarray,
    correct: np.ndarray,
    path: Path,
) -> Path:
    """One row per query: the query image, then its top-k gallery images framed green (same identity)
    or red. query_images (Q, H, W, 3) uint8, gallery_images indexable (G, H, W, 3), ranked (Q, k)
    gallery indices, correct (Q, k) bool. One image (ranked_mosaic), so it draws in well under a second."""
    plt = _pyplot()
    q, k = ranked.shape
    canvas = ranked_mosaic(query_images, gallery_images, ranked, correct)
    tile_w = canvas.shape[1] / (k + 1)
    fig, ax = plt.subplots(figsize=(1.0 * (k + 1), 2.0 * q))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([tile_w * (j + 0.5) - GAP / 2 for j in range(k + 1)], ["query", *map(str, range(1, k + 1))])
    ax.tick_params(axis="x", labelsize=7, length=0, labeltop=True, labelbottom=False)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title("green: same identity, red: another", fontsize=8)
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
