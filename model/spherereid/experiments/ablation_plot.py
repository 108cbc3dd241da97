"""ablation.png: one panel per metric (rank-1, mAP), a group of bars per head (and per other sampler),
a bar per loss and warm-up setting, each bar labelled with its value, and the paper's Market-1501
figure as a marker on the cell it reports (only the full method's was found)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .paper import PAPER_MARKET1501

PANELS = (("rank1", "rank-1"), ("mAP", "mAP"))
SERIES_ORDER = (("softmax", "off"), ("softmax", "on"), ("sphere", "off"), ("sphere", "on"))
HEAD_ORDER = "ABCD"


@dataclass(frozen=True)
class PaperMarker:
    """The paper's figure (percent) for one metric, drawn on bar `series` of group `group`."""

    metric: str
    group: int
    series: int
    value: float


@dataclass(frozen=True)
class PlotLayout:
    """What the figure shows: groups (x positions), series (bars in a group), values in percent
    (values[metric][series][group], None where the grid has no such cell) and the paper's markers."""

    groups: list[str]
    series: list[str]
    values: dict[str, list[list[float | None]]]
    markers: list[PaperMarker]


def _group_label(head: str, sampler: str) -> str:
    return f"network {head}" if sampler == "balanced" else f"network {head}, {sampler} batches"


def _series_label(loss: str, warmup: str) -> str:
    return f"{loss}, {'warm-up' if warmup == 'on' else 'no warm-up'}"


def plot_layout(records: Sequence[dict[str, Any]]) -> PlotLayout:
    """Groups: heads in A-D order on balanced batches, then any other sampler; series: the loss and
    warm-up settings the records hold, softmax before sphere, no warm-up before warm-up."""
    group_keys = sorted(
        {(r["head"], r["sampler"]) for r in records},
        key=lambda k: (k[1] != "balanced", k[1], HEAD_ORDER.find(k[0]), k[0]),
    )
    present = {(r["loss"], r["warmup"]) for r in records}
    series_keys = [s for s in SERIES_ORDER if s in present] + sorted(present - set(SERIES_ORDER))
    values: dict[str, list[list[float | None]]] = {
        m: [[None] * len(group_keys) for _ in series_keys] for m, _ in PANELS
    }
    markers = []
    for r in records:
        g = group_keys.index((r["head"], r["sampler"]))
        s = series_keys.index((r["loss"], r["warmup"]))
        for metric, _ in PANELS:
            values[metric][s][g] = 100 * float(r[metric])
            paper = PAPER_MARKET1501.get(r["cell"], {}).get(metric)
            if paper is not None:
                markers.append(PaperMarker(metric, g, s, paper))
    return PlotLayout(
        groups=[_group_label(*k) for k in group_keys],
        series=[_series_label(*k) for k in series_keys],
        values=values,
        markers=markers,
    )


def plot_ablation(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """Draw plot_layout(records) into `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout = plot_layout(records)
    width = 0.8 / max(1, len(layout.series))

    def bar_x(group: int, series: int) -> float:  # bars side by side, centred on the group's tick
        return group + (series - (len(layout.series) - 1) / 2) * width

    fig, axes = plt.subplots(
        1, len(PANELS), figsize=(min(15.0, max(7.0, 1.4 * len(layout.groups) * len(PANELS) + 2)), 4.4)
    )
    for ax, (metric, title) in zip(axes, PANELS):
        for s, label in enumerate(layout.series):
            shown = [(bar_x(g, s), v) for g, v in enumerate(layout.values[metric][s]) if v is not None]
            bars = ax.bar([x for x, _ in shown], [v for _, v in shown], width=width, label=label)
            ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        for m in (m for m in layout.markers if m.metric == metric):
            ax.plot(
                [bar_x(m.group, m.series)],
                [m.value],
                marker="*",
                color="black",
                markersize=11,
                linestyle="none",
            )
        ax.set_xticks(range(len(layout.groups)), layout.groups, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel(f"{title} (%)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    if layout.markers:
        axes[-1].plot([], [], marker="*", color="black", linestyle="none", label="paper (Market-1501)")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.suptitle("Ablation: our cells (bars) and the paper's reported figure (star)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
