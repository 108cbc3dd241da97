"""The int8 export, shared by `spherereid export --quantize int8` and the register stage: calibrate and
quantize the fp32 ONNX model, hold it to the parity budget, time it against fp32, then (only then) put it
at its path. A refused model leaves nothing behind."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import INT8_BUDGET_POINTS
from ..data.manifest import PreparedSet, SplitData
from .int8_parity import Int8Parity, check_int8_parity
from .quantize import calibration_images, quantize_int8
from .speed import SPEED_BATCH, SpeedComparison, compare_speed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Model:
    """The int8 ONNX file, its parity with fp32 ONNX and its speed against it."""

    path: Path
    parity: Int8Parity
    speed: SpeedComparison
    calibration_images: int

    def figures(self) -> dict[str, str]:
        """Flat strings: the parity figures, the speed figures and the calibration size (tags, records)."""
        values = {**self.parity.figures(), **asdict(self.speed)}
        values["calibration_images"] = self.calibration_images
        return {k: str(v) for k, v in values.items()}


def export_int8(
    fp32_path: str | Path,
    out_path: str | Path,
    *,
    prepared: PreparedSet,
    fp32_rows: np.ndarray,
    budget_points: float = INT8_BUDGET_POINTS,
    budget_fix: str = "",
) -> Int8Model:
    """Quantize `fp32_path` calibrated on `prepared`'s train split, check it on its query + gallery against
    `fp32_rows` (ParityError beyond `budget_points`), time both, and move the int8 model to `out_path`."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    query, gallery = prepared.split("query"), prepared.split("gallery")
    calibration = calibration_images(prepared.split("train"))
    with tempfile.TemporaryDirectory(prefix=".int8-", dir=out_path.parent) as tmp:
        staged = quantize_int8(fp32_path, Path(tmp) / out_path.name, calibration)
        parity = check_int8_parity(
            int8_path=staged,
            fp32_rows=fp32_rows,
            query=query,
            gallery=gallery,
            budget_points=budget_points,
            fix=budget_fix,
        )
        speed = compare_speed(fp32_path, staged, _speed_batch(query, gallery))
        os.replace(staged, out_path)
    log.info("int8 model %s: %s; %s", out_path, parity.summary(), speed.summary())
    return Int8Model(out_path, parity, speed, len(calibration))


def _speed_batch(query: SplitData, gallery: SplitData) -> np.ndarray:
    """The batch both models are timed on: the first SPEED_BATCH query images, topped up from the gallery."""
    images = np.asarray(query.images[:SPEED_BATCH])
    missing = SPEED_BATCH - len(images)
    return images if missing <= 0 else np.concatenate([images, np.asarray(gallery.images[:missing])])
