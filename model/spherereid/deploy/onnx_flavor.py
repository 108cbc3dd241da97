"""The ONNX flavour (for the register stage): export model.pt with its chain, prove parity on the prepared
query/gallery, and log the file with MLflow's onnx flavor in the training run, next to the pyfunc. With
register.onnx_quantize int8 also the int8 model (deploy.int8_export), logged as a second onnx flavor
model, its parity and speed figures on the version (tags under ONNX_INT8_PREFIX) and in the model card.

Nothing is logged when the export, a parity check or the int8 budget fails: the ExportError /
ParityError / QuantizeError propagates and the register stage stops before it registers anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import INT8_BUDGET_POINTS
from ..data.image_chain import ImageChain, model_key
from ..data.manifest import PreparedSet
from ..tracking.client import client
from ..tracking.runs import RunRef
from ..tracking.tags import (
    ONNX_INT8_KEY,
    ONNX_INT8_PREFIX,
    ONNX_INT8_URI,
    ONNX_KEY,
    ONNX_MODEL_URI,
    ONNX_OPSET,
    ONNX_URI,
)
from ..training import saved_model
from .flavors import log_as_run_output, log_once, logged_model_name, pip_pins
from .int8_export import Int8Model, export_int8
from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from .parity import ParityReport, check_parity_rows

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model.int8.onnx"


@dataclass(frozen=True)
class LoggedInt8:
    """The logged int8 ONNX model and what it was shown to be."""

    model_uri: str
    model: Int8Model

    def tags(self, prefix: str = ONNX_INT8_PREFIX) -> dict[str, str]:
        """`<prefix>model_uri` and `<prefix><figure>` for each of the model's figures."""
        return {
            f"{prefix}model_uri": self.model_uri,
            **{f"{prefix}{k}": v for k, v in self.model.figures().items()},
        }


@dataclass(frozen=True)
class OnnxExport:
    """The logged ONNX model, the parity it was shown to have, and the local file."""

    model_uri: str
    report: ParityReport
    path: Path
    chain: ImageChain
    int8: LoggedInt8 | None = None

    def version_tags(self) -> dict[str, str]:
        """Tags for the registered version: where the ONNX model(s) are, the parity (and int8) figures."""
        logged = {ONNX_MODEL_URI: self.model_uri, ONNX_OPSET: str(OPSET), **self.report.tags()}
        return logged if self.int8 is None else {**logged, **self.int8.tags()}

    def record(self) -> dict:
        """For registration.json."""
        record: dict[str, object] = {
            "model_uri": self.model_uri,
            "file": str(self.path),
            **self.report.tags(prefix=""),
        }
        if self.int8 is not None:
            record["int8"] = {"file": str(self.int8.model.path), **self.int8.tags(prefix="")}
        return record


def export_and_log(
    ref: RunRef,
    model_pt: Path,
    *,
    chain: ImageChain,
    prepared_dir: Path,
    out_dir: Path,
    dataset: str,
    quantize: str = "none",
    int8_budget: float = INT8_BUDGET_POINTS,
) -> OnnxExport:
    """Export, prove parity (ParityError / ExportError on failure), with `quantize` "int8" also quantize
    and hold to `int8_budget` points, then log the ONNX model(s) into run `ref`."""
    net = saved_model.load_model(Path(model_pt))
    path = export_onnx(net, chain, Path(out_dir) / ONNX_FILE)
    prepared = PreparedSet(prepared_dir)
    report, rows = check_parity_rows(
        net=net, chain=chain, onnx_path=path, query=prepared.split("query"), gallery=prepared.split("gallery")
    )
    int8 = None
    if quantize == "int8":
        int8 = export_int8(
            path,
            Path(out_dir) / ONNX_INT8_FILE,
            prepared=prepared,
            fp32_rows=rows,
            budget_points=int8_budget,
            budget_fix=" (register.onnx_quantize: none) or raise register.onnx_int8_budget",
        )
    key, dim = model_key(Path(model_pt), chain), net.embedding_dim
    name = logged_model_name(dataset, net.constructor_args, suffix="onnx")
    metadata = {"image_chain": chain.to_dict(), "parity": report.tags(prefix="")}
    uri = log_once(
        ref,
        key,
        uri_tag=ONNX_URI,
        key_tag=ONNX_KEY,
        what="ONNX model",
        log_model=lambda: _log(ref, path, chain=chain, metadata=metadata, dim=dim, name=name),
    )
    if int8 is None:
        return OnnxExport(uri, report, path, chain)
    int8_uri = _log_int8(ref, int8, key, chain=chain, dim=dim, name=f"{name}-int8")
    return OnnxExport(uri, report, path, chain, LoggedInt8(int8_uri, int8))


def _log_int8(ref: RunRef, int8: Int8Model, key: str, *, chain: ImageChain, dim: int, name: str) -> str:
    """Log the int8 model (once per model.pt + chain) as an onnx flavor model of run `ref`; its URI."""
    metadata = {"image_chain": chain.to_dict(), "int8": int8.figures()}
    return log_once(
        ref,
        key,
        uri_tag=ONNX_INT8_URI,
        key_tag=ONNX_INT8_KEY,
        what="int8 ONNX model",
        log_model=lambda: _log(ref, int8.path, chain=chain, metadata=metadata, dim=dim, name=name),
    )


def _log(ref: RunRef, path: Path, *, chain: ImageChain, metadata: dict, dim: int, name: str) -> str:
    client(ref.tracking_uri)  # sets the environment defaults
    import mlflow
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    h, w = chain.stored_size
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, h, w, 3), INPUT_NAME)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim), OUTPUT_NAME)]),
    )
    uri = log_as_run_output(
        ref,
        name,
        lambda model_id: mlflow.onnx.log_model(
            onnx.load(str(path)),
            name=name,
            model_id=model_id,
            signature=signature,
            pip_requirements=pip_pins(("onnx", "onnxruntime", "numpy", "mlflow")),
            onnx_execution_providers=["CPUExecutionProvider"],
            save_as_external_data=False,
            metadata=metadata,
        ),
    )
    log.info("logged ONNX model %s as %s (input uint8 (N, %d, %d, 3))", uri, name, h, w)
    return uri


def usage_markdown(export: OnnxExport) -> str:
    """The model card's ONNX section: input, output, parity figures and a Python example."""
    h, w = export.chain.stored_size
    r = export.report
    return "\n".join(
        [
            "## ONNX",
            "",
            f"`{export.model_uri}` (MLflow onnx flavor, opset {OPSET}, dynamic batch). Input `{INPUT_NAME}`: "
            f"uint8 (N, {h}, {w}, 3) RGB pixels at the stored size (decode and resize with Pillow's bilinear "
            "filter, as `ImageChain.stored` does); resize to the input size, normalisation, the mirror "
            f"average and L2 run inside the graph. Output `{OUTPUT_NAME}`: float32 (N, D) unit rows.",
            "",
            f"Parity with PyTorch (onnxruntime CPU, {r.rows} query + gallery images, batch sizes "
            f"{', '.join(map(str, r.batch_sizes))}): min cosine {r.min_cosine:.7f}, rows equal across batch "
            f"sizes to {r.max_batch_difference:.1e}, rank-1 {r.rank1_onnx:.4f} "
            f"and mAP {r.map_onnx:.4f} on both.",
            "",
            "```python",
            "import mlflow, numpy as np",
            f'model = mlflow.pyfunc.load_model("{export.model_uri}")',
            f"embeddings = model.predict(images)  # images: np.uint8 array (N, {h}, {w}, 3)",
            "```",
            "",
            "Or export the same graph yourself: "
            "`spherereid export --model models:/NAME/VERSION --out model.onnx`.",
            "",
            *([] if export.int8 is None else int8_markdown(export.int8)),
        ]
    )


def int8_markdown(int8: LoggedInt8) -> list[str]:
    """The model card's int8 lines: what it is, parity and speed against fp32 ONNX, and where it holds."""
    p, s = int8.model.parity, int8.model.speed
    return [
        "### int8 (CPU)",
        "",
        f"`{int8.model_uri}`: the same graph and interface with the backbone statically quantized "
        "(onnxruntime QDQ, int8 weights per channel, uint8 activations), calibrated on "
        f"{int8.model.calibration_images} training images. Against fp32 ONNX on the same {p.rows} query + "
        "gallery images:",
        "",
        "| | fp32 ONNX | int8 ONNX | int8 - fp32 |",
        "|---|---|---|---|",
        f"| rank-1 | {100 * p.rank1_fp32:.2f} | {100 * p.rank1_int8:.2f} | {p.rank1_points:+.2f} points |",
        f"| mAP | {100 * p.map_fp32:.2f} | {100 * p.map_int8:.2f} | {p.map_points:+.2f} points |",
        f"| images/s (batch {s.batch}) | {s.fp32_images_per_s:.1f} | {s.int8_images_per_s:.1f} | "
        f"{s.speedup:.2f}x |",
        "",
        f"Top-1 agreement with fp32: {p.top1_agreement:.4f} of the queries have the same nearest gallery "
        f"image; row cosine with fp32 {p.mean_cosine:.5f} mean, {p.min_cosine:.5f} worst. Budget: rank-1 "
        f"and mAP within {p.budget_points} points of fp32 (a larger difference refuses the export). Speed "
        f"measured on {s.cpu}, median of {s.repeats} interleaved runs: int8 is fast on x86 CPUs with VNNI "
        "(AVX512-VNNI, AVX-VNNI); without VNNI onnxruntime falls back to slower u8 x s8 kernels and the "
        "speed-up can vanish or invert.",
        "",
    ]
