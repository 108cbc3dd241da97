"""The ONNX flavour (for the register stage): export model.pt with its chain, prove parity on the prepared
query/gallery, and log the file with MLflow's onnx flavor in the training run, next to the pyfunc.

Nothing is logged when the export or a parity check fails: the ExportError / ParityError propagates and
the register stage stops before it registers anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.image_chain import ImageChain, model_key
from ..data.manifest import PreparedSet
from ..tracking import runs
from ..tracking.runs import RunRef
from ..training import checkpoint
from .flavors import log_as_run_output, log_once, logged_model_name, pip_pins
from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx
from .parity import ParityReport, check_parity

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
ONNX_URI_TAG = "spherereid.onnx_model_uri"
ONNX_KEY_TAG = "spherereid.onnx_key"  # sha256 of model.pt + chain: one logged ONNX model per pair


@dataclass(frozen=True)
class OnnxExport:
    """The logged ONNX model, the parity it was shown to have, and the local file."""

    model_uri: str
    report: ParityReport
    path: Path
    chain: ImageChain

    def version_tags(self) -> dict[str, str]:
        """Tags for the registered version: where the ONNX model is and the parity figures."""
        return {"onnx.model_uri": self.model_uri, "onnx.opset": str(OPSET), **self.report.tags()}

    def record(self) -> dict:
        """For registration.json."""
        return {"model_uri": self.model_uri, "file": str(self.path), **self.report.tags(prefix="")}


def export_and_log(
    ref: RunRef, model_pt: Path, *, chain: ImageChain, prepared_dir: Path, out_dir: Path, dataset: str
) -> OnnxExport:
    """Export, prove parity (ParityError / ExportError on failure) and log the ONNX model into run `ref`."""
    net = checkpoint.load_model(Path(model_pt))
    path = export_onnx(net, chain, Path(out_dir) / ONNX_FILE)
    prepared = PreparedSet(prepared_dir)
    report = check_parity(
        net=net, chain=chain, onnx_path=path, query=prepared.split("query"), gallery=prepared.split("gallery")
    )
    uri = log_once(
        ref,
        model_key(Path(model_pt), chain),
        uri_tag=ONNX_URI_TAG,
        key_tag=ONNX_KEY_TAG,
        what="ONNX model",
        log_model=lambda: _log(
            ref,
            path,
            chain=chain,
            report=report,
            dim=net.embedding_dim,
            name=logged_model_name(dataset, net.constructor_args, suffix="onnx"),
        ),  # fmt: skip
    )
    return OnnxExport(uri, report, path, chain)


def _log(ref: RunRef, path: Path, *, chain: ImageChain, report: ParityReport, dim: int, name: str) -> str:
    runs.client(ref.tracking_uri)  # sets the environment defaults
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
            metadata={"image_chain": chain.to_dict(), "parity": report.tags(prefix="")},
        ),
    )
    log.info("logged ONNX model %s as %s (input uint8 (N, %d, %d, 3))", uri, name, h, w)
    return uri


def usage_markdown(export: OnnxExport) -> str:
    """The model card's ONNX section: input, output, parity figures and a Python example."""
    h, w = export.chain.stored_size
    r = export.report
    return "\n".join([
        "## ONNX",
        "",
        f"`{export.model_uri}` (MLflow onnx flavor, opset {OPSET}, dynamic batch). Input `{INPUT_NAME}`: "
        f"uint8 (N, {h}, {w}, 3) RGB pixels at the stored size (decode and resize with Pillow's bilinear "
        "filter, as `ImageChain.stored` does); resize to the input size, normalisation, the mirror average "
        f"and L2 run inside the graph. Output `{OUTPUT_NAME}`: float32 (N, D) unit rows.",
        "",
        f"Parity with PyTorch (onnxruntime CPU, {r.rows} query + gallery images, batch sizes "
        f"{', '.join(map(str, r.batch_sizes))}): min cosine {r.min_cosine:.7f}, rows equal across batch "
        f"sizes to {r.max_batch_difference:.1e}, rank-1 {r.rank1_onnx:.4f} and mAP {r.map_onnx:.4f} on both.",
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
    ])  # fmt: skip
