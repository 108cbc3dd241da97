"""What an int8 model can promise against its fp32 ONNX model on the evaluated query/gallery.

int8 rows are not equal to fp32 rows, so the fp32 checks (cosine >= 0.99999, identical rank-1 and mAP) do
not apply. Instead: rank-1 and mAP of both, their difference in points (refused beyond a budget,
config.INT8_BUDGET_POINTS by default), the top-1 agreement (the fraction of queries whose nearest gallery
image, by cosine over the whole gallery, is the same image for both) and the row cosines.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import INT8_BUDGET_POINTS
from ..data.manifest import SplitData
from .onnx_export import OnnxEmbedder
from .parity import ParityError, rank1_and_map, row_cosines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Parity:
    """int8 against fp32 ONNX on `rows` query + gallery images; metrics are fractions, differences points."""

    rows: int
    rank1_fp32: float
    rank1_int8: float
    map_fp32: float
    map_int8: float
    top1_agreement: float
    mean_cosine: float
    min_cosine: float
    budget_points: float

    @property
    def rank1_points(self) -> float:
        """int8 minus fp32 rank-1, in points."""
        return 100.0 * (self.rank1_int8 - self.rank1_fp32)

    @property
    def map_points(self) -> float:
        """int8 minus fp32 mAP, in points."""
        return 100.0 * (self.map_int8 - self.map_fp32)

    def figures(self) -> dict[str, float]:
        """The fields and both differences, for tags and records."""
        return {
            **asdict(self),
            "rank1_difference_points": self.rank1_points,
            "map_difference_points": self.map_points,
        }

    def summary(self) -> str:
        return (
            f"rank-1 {100 * self.rank1_int8:.2f} vs fp32 {100 * self.rank1_fp32:.2f} "
            f"({self.rank1_points:+.2f} points), mAP {100 * self.map_int8:.2f} vs fp32 "
            f"{100 * self.map_fp32:.2f} ({self.map_points:+.2f} points), top-1 agreement "
            f"{self.top1_agreement:.4f}"
        )


def top1_agreement(a: np.ndarray, b: np.ndarray, num_query: int) -> float:
    """Fraction of the first `num_query` rows (queries) whose most similar gallery row (the rest) is the
    same under embeddings `a` and `b` (N, D); unit rows, so similarity is the dot product."""
    if num_query == 0 or len(a) == num_query:
        return 1.0
    top_a = np.argmax(a[:num_query] @ a[num_query:].T, axis=1)
    top_b = np.argmax(b[:num_query] @ b[num_query:].T, axis=1)
    return float(np.mean(top_a == top_b))


def check_int8_parity(
    *,
    int8_path: str | Path,
    fp32_rows: np.ndarray,
    query: SplitData,
    gallery: SplitData,
    budget_points: float = INT8_BUDGET_POINTS,
    fix: str = "",
) -> Int8Parity:
    """Embed query + gallery with the int8 model, compare with `fp32_rows` (the fp32 ONNX rows of the same
    images, query first); ParityError in one line when rank-1 or mAP differs by more than the budget
    (`fix`, appended to "keep the fp32 model", names the caller's way to do so or to allow more)."""
    images = np.concatenate([np.asarray(query.images), np.asarray(gallery.images)])
    int8_rows = OnnxEmbedder(int8_path)(images)
    nq = len(query)
    rank1_f, map_f = rank1_and_map(fp32_rows[:nq], fp32_rows[nq:], query, gallery)
    rank1_i, map_i = rank1_and_map(int8_rows[:nq], int8_rows[nq:], query, gallery)
    cos = row_cosines(int8_rows, fp32_rows)
    parity = Int8Parity(
        len(images),
        rank1_f,
        rank1_i,
        map_f,
        map_i,
        top1_agreement(int8_rows, fp32_rows, nq),
        float(cos.mean()),
        float(cos.min()),
        budget_points,
    )
    worst = max(abs(parity.rank1_points), abs(parity.map_points))
    if not worst <= budget_points:  # NaN fails too
        raise ParityError(
            f"int8 parity budget exceeded: {parity.summary()} on {len(images)} query + gallery images; "
            f"the budget is {budget_points} points: keep the fp32 model{fix or ''}"
        )
    log.info("int8 parity on %d images: %s", len(images), parity.summary())
    return parity
