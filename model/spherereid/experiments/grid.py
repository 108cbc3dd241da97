"""The ablation grid: heads A-D x loss {softmax, sphere} x warm-up {on, off} on balanced sampling, plus
random sampling on the full method (head D, sphere, warm-up): 17 cells.

`--grid AXIS=V1,V2` narrows an axis (several flags narrow several axes). Axes and their values:
head (A B C D; alias model.head), loss (softmax sphere; alias loss.type), warmup (on off), sampler
(balanced random; alias sampler.type).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Params
from .overrides import OverrideError, parse_assignments

AXES: dict[str, tuple[str, ...]] = {
    "head": ("A", "B", "C", "D"),
    "loss": ("softmax", "sphere"),
    "warmup": ("on", "off"),
    "sampler": ("balanced", "random"),
}
ALIASES = {"model.head": "head", "loss.type": "loss", "sampler.type": "sampler", "schedule.warmup": "warmup"}
FULL_METHOD = {"head": "D", "loss": "sphere", "warmup": "on"}


@dataclass(frozen=True)
class Cell:
    """One ablation setting: head, loss, warm-up on/off, sampler type."""

    head: str
    loss: str
    warmup: str
    sampler: str

    @property
    def cell_id(self) -> str:
        """A folder-safe name, e.g. D-sphere-warmup-balanced."""
        warm = "warmup" if self.warmup == "on" else "nowarmup"
        return f"{self.head}-{self.loss}-{warm}-{self.sampler}"

    def settings(self) -> dict[str, str]:
        return {"head": self.head, "loss": self.loss, "warmup": self.warmup, "sampler": self.sampler}

    def overrides(self, params: Params) -> dict[str, Any]:
        """The params this cell sets; warm-up off is schedule.warmup_epochs 0 (the milestones stay)."""
        warmup_epochs = params.schedule.warmup_epochs if self.warmup == "on" else 0
        return {
            "model.head": self.head,
            "loss.type": self.loss,
            "schedule.warmup_epochs": warmup_epochs,
            "sampler.type": self.sampler,
        }


def default_grid() -> list[Cell]:
    """The paper's 16 balanced cells, then random sampling on the full method."""
    cells = [
        Cell(h, loss, w, "balanced")
        for h, loss, w in itertools.product(AXES["head"], AXES["loss"], AXES["warmup"])
    ]
    cells.append(Cell(FULL_METHOD["head"], FULL_METHOD["loss"], FULL_METHOD["warmup"], "random"))
    return cells


def parse_filters(items: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`["head=A,D", "loss.type=sphere"]` -> `{"head": ("A", "D"), "loss": ("sphere",)}`."""
    out: dict[str, tuple[str, ...]] = {}
    for key, text in parse_assignments(items, flag="--grid").items():
        axis = ALIASES.get(key, key)
        if axis not in AXES:
            raise OverrideError(f"--grid {key}: unknown axis (axes: {', '.join(AXES)})")
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in AXES[axis]]
        if not values or bad:
            raise OverrideError(
                f"--grid {key}={text}: values must be among {','.join(AXES[axis])} (comma-separated)"
            )
        out[axis] = values
    return out


def narrow(cells: Sequence[Cell], filters: Mapping[str, Sequence[str]]) -> list[Cell]:
    """The cells whose every filtered axis holds one of the allowed values; none left is an error."""
    kept = [c for c in cells if all(c.settings()[axis] in allowed for axis, allowed in filters.items())]
    if not kept:
        raise OverrideError(f"--grid {dict(filters)} leaves no cell of the grid; widen it")
    return kept
