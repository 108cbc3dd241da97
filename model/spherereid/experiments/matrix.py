"""The cross-dataset matrix: {(train, test): metrics} -> matrix.json ({train: {test: {rank1, mAP, ...}}}),
matrix.md (one table per metric, rows = training set, columns = test set) and matrix.png (heatmaps).

Pure functions of their inputs; a missing (train, test) pair is shown as "missing", never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .tables import write_json_atomic

MATRIX_METRICS = ("rank1", "mAP", "mAP_official", "mINP")
Matrix = dict[str, dict[str, dict[str, float]]]


class MatrixError(ValueError):
    """A cross-evaluation result that cannot go into the matrix: the message names the pair and key."""


def assemble(
    results: Mapping[tuple[str, str], Mapping[str, float]], metrics: Sequence[str] = MATRIX_METRICS
) -> Matrix:
    """`{(train, test): {metric: value}}` -> `{train: {test: {metric: value}}}` (only `metrics`)."""
    out: Matrix = {}
    for (train, test), values in sorted(results.items()):
        row = {}
        for key in metrics:
            if key not in values:
                raise MatrixError(
                    f"cross-evaluation {train} -> {test}: metric '{key}' missing from its metrics"
                )
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise MatrixError(
                    f"cross-evaluation {train} -> {test}: metric '{key}' is {value!r}, not a number"
                )
            row[key] = float(value)
        out.setdefault(train, {})[test] = row
    return out


def axes(matrix: Matrix) -> tuple[list[str], list[str]]:
    """Training sets (rows) and test sets (columns), sorted."""
    trains = sorted(matrix)
    tests = sorted({t for row in matrix.values() for t in row})
    return trains, tests


def values(matrix: Matrix, metric: str) -> np.ndarray:
    """(#train, #test) array of `metric`; NaN where a pair is missing."""
    trains, tests = axes(matrix)
    grid = np.full((len(trains), len(tests)), np.nan)
    for i, train in enumerate(trains):
        for j, test in enumerate(tests):
            if test in matrix[train]:
                grid[i, j] = matrix[train][test][metric]
    return grid


def to_markdown(matrix: Matrix, metrics: Sequence[str] = ("rank1", "mAP")) -> str:
    """One table per metric: rows trained on, columns tested on, values in %; the diagonal in bold."""
    trains, tests = axes(matrix)
    lines = ["# Cross-dataset matrix", "", "Rows: the training set; columns: the test set."]
    for metric in metrics:
        grid = values(matrix, metric)
        lines += [
            "",
            f"## {metric}",
            "",
            "| train \\ test | " + " | ".join(tests) + " |",
            "|---|" + "---|" * len(tests),
        ]
        for i, train in enumerate(trains):
            cells = []
            for j, test in enumerate(tests):
                text = "missing" if np.isnan(grid[i, j]) else f"{100 * grid[i, j]:.2f}%"
                cells.append(f"**{text}**" if train == test and not np.isnan(grid[i, j]) else text)
            lines.append(f"| {train} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_matrix(matrix: Matrix, path: Path, metrics: Sequence[str] = ("rank1", "mAP")) -> Path:
    """Heatmaps (one per metric), each value annotated in %; missing pairs left blank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trains, tests = axes(matrix)
    fig, axs = plt.subplots(
        1, len(metrics), figsize=(1.6 + 1.4 * len(tests) * len(metrics), 1.4 + len(trains))
    )
    for ax, metric in zip(np.atleast_1d(axs), metrics, strict=True):
        grid = 100 * values(matrix, metric)
        ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=100, cmap="viridis")
        ax.set_xticks(range(len(tests)), tests, rotation=30, ha="right")
        ax.set_yticks(range(len(trains)), trains)
        ax.set_xlabel("tested on")
        ax.set_ylabel("trained on")
        ax.set_title(metric)
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white" if v < 60 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def write_matrix(results: Mapping[tuple[str, str], Mapping[str, float]], out_dir: Path) -> dict[str, Path]:
    """Write matrix.json, matrix.md and matrix.png (e.g. into outputs/cross)."""
    out_dir = Path(out_dir)
    matrix = assemble(results)
    paths = {"json": out_dir / "matrix.json", "md": out_dir / "matrix.md", "png": out_dir / "matrix.png"}
    write_json_atomic(paths["json"], matrix)
    paths["md"].write_text(to_markdown(matrix))
    plot_matrix(matrix, paths["png"])
    return paths
