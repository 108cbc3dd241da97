"""int8 ONNX for CPU deployments: static quantization of the exported fp32 graph, calibrated on training
images.

The recipe (`recipe()`), chosen by measurement on the main job's ResNet-18 (benchmarks/onnx_int8.py;
README, "int8 for CPU deployments"):
- onnxruntime's pre-processing first (`quant_pre_process`: its graph optimisation folds each BatchNorm into
  its Conv, then ONNX shape inference), so that every convolution becomes one quantized kernel;
- QDQ format, int8 weights per output channel, uint8 activations (x86's u8 x s8 kernels: int8
  activations ran slower than fp32 here), the full 8-bit weight range (`reduce_range` off: VNNI
  accumulates without saturation), MinMax calibration;
- only the convolutions are quantized (the first one included: keeping it fp32 cost about 18 % of
  int8's speed and gained no accuracy); the in-graph resize and normalisation, the residual sums, the
  head, the mirror sum and the L2 normalisation stay fp32. Quantizing the residual sums and pooling too
  measured no faster; quantizing the whole graph about 4 % faster, but it puts the embedding itself
  through 8 bits.

Calibration feeds the graph its own input: uint8 training images at the stored size, evenly spread over
the prepared train split, which the graph takes through the rest of the evaluated chain (resize,
normalise, mirror) exactly as at inference.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import SplitData
from .onnx_export import INPUT_NAME, check_onnx_file

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 256  # training images the activation ranges are measured on
CALIBRATION_BATCH = 32
QUANTIZED_OPS = ("Conv",)
QUANTIZED_NODE_TYPES = ("QuantizeLinear", "QLinearConv")  # QDQ's, and the QOperator format's


class QuantizeError(RuntimeError):
    """The int8 quantization failed or cannot start; the message says why and what to do."""


def recipe() -> dict[str, Any]:
    """quantize_static's keyword arguments (the documented recipe), built where onnxruntime is imported."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {
        "quant_format": QuantFormat.QDQ,
        "per_channel": True,
        "activation_type": QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "reduce_range": False,
        "calibrate_method": CalibrationMethod.MinMax,
        "op_types_to_quantize": list(QUANTIZED_OPS),
    }


def calibration_images(train: SplitData, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """`count` uint8 (n, stored_h, stored_w, 3) images evenly spread over the train split (all of them
    when it holds fewer); QuantizeError when it is empty."""
    if len(train) == 0:
        raise QuantizeError("the prepared train split is empty: int8 calibration needs training images")
    rows = np.unique(np.linspace(0, len(train) - 1, min(count, len(train))).round().astype(np.int64))
    return np.ascontiguousarray(np.asarray(train.images)[rows])


def calibration_reader(images: np.ndarray, batch: int = CALIBRATION_BATCH) -> Any:
    """onnxruntime's CalibrationDataReader over `images`, `batch` at a time, as the graph's input."""
    from onnxruntime.quantization import CalibrationDataReader

    class StoredImages(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([images[i : i + batch] for i in range(0, len(images), batch)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(self.batches, None)
            return None if chunk is None else {INPUT_NAME: chunk}

    return StoredImages()


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray) -> Path:
    """Quantize the fp32 ONNX model at `fp32_path` with `recipe()`, calibrated on `calibration` (uint8 images
    at the stored size), into `out_path`; QuantizeError when onnxruntime fails or quantizes nothing."""
    import onnx
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="spherereid-int8-") as tmp:
        optimised = Path(tmp) / "optimised.onnx"
        try:
            # symbolic shape inference trips over the exporter's Expand; ONNX's own is enough for a CNN
            quant_pre_process(str(fp32_path), str(optimised), skip_symbolic_shape=True)
            quantize_static(str(optimised), str(out_path), calibration_reader(calibration), **recipe())
        except Exception as exc:  # noqa: BLE001 - any onnxruntime failure is reported in one line
            raise QuantizeError(
                f"int8 quantization of {fp32_path} failed ({type(exc).__name__}: {_first_line(exc)})"
            ) from None
    check_onnx_file(out_path)
    found = quantized_node_count(onnx.load(str(out_path)).graph.node)
    if found == 0:
        raise QuantizeError(f"{out_path}: onnxruntime quantized no node (no Conv in {fp32_path}?)")
    log.info(
        "quantized %s -> %s (%d quantized nodes, %d calibration images)",
        fp32_path,
        out_path,
        found,
        len(calibration),
    )
    return out_path


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0]


def quantized_node_count(nodes: Iterable[Any]) -> int:
    """How many of an ONNX graph's nodes quantize (QUANTIZED_NODE_TYPES)."""
    return sum(1 for node in nodes if node.op_type in QUANTIZED_NODE_TYPES)
