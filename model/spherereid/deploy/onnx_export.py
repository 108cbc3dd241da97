"""ONNX export of the whole embedding chain: uint8 images in, L2-normalised embeddings out.

The graph takes uint8 (N, stored_h, stored_w, 3) RGB pixels, i.e. what `ImageChain.stored_batch` returns
(decode and resize to the stored size stay outside, in Pillow), and runs inside the graph exactly what
the evaluate stage runs: `ImageChain.eval_transform()` (antialiased bilinear resize to the input size,
normalise), the network, the sum with the mirror image's embedding when `chain.flip`, L2 normalisation.
N is dynamic. Exported with torch's current (dynamo) exporter at opset >= 18.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.image_chain import ImageChain

log = logging.getLogger(__name__)

OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


class ExportError(RuntimeError):
    """The ONNX export failed; the message says which step."""


class EmbeddingGraph(nn.Module):
    """uint8 (N, stored_h, stored_w, 3) -> float32 (N, D) unit rows: the evaluate stage's chain."""

    def __init__(self, net: nn.Module, chain: ImageChain):
        super().__init__()
        self.net = net.eval()
        self.transform = chain.eval_transform()
        self.flip = chain.flip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.transform(images)
        emb = self.net(x).float()
        if self.flip:
            emb = emb + self.net(x.flip(-1)).float()
        return F.normalize(emb, dim=1)


def export_onnx(net: nn.Module, chain: ImageChain, path: str | Path, *, opset: int = OPSET) -> Path:
    """Export `net` with `chain` to a single-file ONNX model at `path` (dynamic batch); return the path."""
    if opset < OPSET:
        raise ExportError(f"opset {opset} requested; the exporter needs opset >= {OPSET}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = EmbeddingGraph(net, chain).eval()
    example = torch.zeros((2, *chain.stored_size, 3), dtype=torch.uint8)  # batch 2: 0/1 get specialised
    batch = torch.export.Dim("batch", min=1)
    chatter = io.StringIO()  # the exporter prints its progress; keep it for the error message only
    try:
        with contextlib.redirect_stdout(chatter), torch.no_grad():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
            if program is None:  # not with dynamo=True; the stubs allow it
                raise ExportError("ONNX export returned no program")
            program.save(str(path), external_data=False)
    except Exception as exc:  # noqa: BLE001 - any exporter failure is reported in one line
        raise ExportError(f"ONNX export failed ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    check_onnx_file(path, opset)
    log.info("exported %s (opset %d, input uint8 (N, %d, %d, 3))", path, opset, *chain.stored_size)
    return path


def check_onnx_file(path: Path, opset: int = OPSET) -> None:
    """ExportError unless `path` is a valid ONNX model with a dynamic batch and opset >= `opset`."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"{path}: not a valid ONNX model ({exc})") from None
    found = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if found < opset:
        raise ExportError(f"{path}: opset {found} < {opset}")
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    if dim0.HasField("dim_value"):
        raise ExportError(f"{path}: batch dimension is fixed to {dim0.dim_value}, not dynamic")


class OnnxEmbedder:
    """onnxruntime (CPU provider) session of an exported model: uint8 stored images -> embeddings."""

    def __init__(self, path: str | Path, threads: int = 0):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """uint8 (N, stored_h, stored_w, 3) -> float32 (N, D), run `batch_size` images at a time."""
        out = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images[i : i + batch_size])})[0]
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(out).astype(np.float32, copy=False)
