"""The served model: an MLflow pyfunc that rebuilds ReIDNet from constructor args + a state_dict.

Artifacts are a JSON file (constructor kwargs, input size) and a state_dict saved with torch.save,
loaded back with `torch.load(weights_only=True)`: no pickled network. The model is logged "from code"
(a three-line entry script importing ReIDEmbeddingModel; no cloudpickle), so serving needs `spherereid`
importable: `mlflow models serve
--env-manager local` in our venv or image (where the package is installed); MLflow's virtualenv/conda
env managers would also need the package and PyPI access.

Input: float32 (N, 3, H, W), normalised like the training input; output: float32 (N, D) unit rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from . import runs
from .runs import RunRef

log = logging.getLogger(__name__)

MODEL_NAME = "model"
CONFIG_ARTIFACT = "config"
WEIGHTS_ARTIFACT = "weights"
MODEL_URI_TAG = "spherereid.model_uri"
MODEL_SHA_TAG = "spherereid.model_sha256"
PREDICT_BATCH = 64
ENTRY_SCRIPT = (
    "# Model entry point (MLflow models-from-code): the network is rebuilt in load_context.\n"
    "import mlflow\n\n"
    "from spherereid.tracking.pyfunc_model import ReIDEmbeddingModel\n\n"
    "mlflow.models.set_model(ReIDEmbeddingModel())\n"
)

try:  # the base class only when mlflow is installed; the module must stay importable without it
    from mlflow.pyfunc import PythonModel as _Base
except ImportError:  # pragma: no cover
    _Base = object


class ReIDEmbeddingModel(_Base):
    """pyfunc wrapper: load_context rebuilds the network; predict maps images to embeddings."""

    def load_context(self, context) -> None:
        import torch

        from ..modeling.net import ReIDNet

        config = json.loads(Path(context.artifacts[CONFIG_ARTIFACT]).read_text())
        constructor = {**config["constructor"], "pretrained": "none"}
        net = ReIDNet(**constructor)
        state = torch.load(context.artifacts[WEIGHTS_ARTIFACT], map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        self.net = net.eval()
        self.height, self.width = int(config["height"]), int(config["width"])

    def predict(self, context, model_input: np.ndarray, params: dict[str, Any] | None = None) -> np.ndarray:
        """(N, 3, H, W) float32 array (or a DataFrame / dict holding one) -> (N, D) float32."""
        import torch

        batch = to_batch(model_input, self.height, self.width)
        out = []
        with torch.no_grad():
            for i in range(0, len(batch), PREDICT_BATCH):
                out.append(self.net(torch.from_numpy(batch[i : i + PREDICT_BATCH])).numpy())
        if not out:
            return np.zeros((0, self.net.embedding_dim), dtype=np.float32)
        return np.concatenate(out).astype(np.float32, copy=False)


def to_batch(model_input: Any, height: int, width: int) -> np.ndarray:
    """Accept an array, a dict with one array, or a DataFrame (one row per image, flattened pixels or
    a column of nested arrays); return a contiguous float32 (N, 3, height, width) array."""
    import pandas as pd

    if isinstance(model_input, dict):
        if len(model_input) != 1:
            raise ValueError(f"expected one input tensor, got keys {sorted(model_input)}")
        model_input = next(iter(model_input.values()))
    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] == 1:
            model_input = np.stack([np.asarray(v, dtype=np.float32) for v in model_input.iloc[:, 0]])
        else:
            model_input = model_input.to_numpy(dtype=np.float32)
    arr = np.asarray(model_input, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[1] == 3 * height * width:
        arr = arr.reshape(-1, 3, height, width)
    if arr.ndim != 4 or arr.shape[1:] != (3, height, width):
        raise ValueError(f"expected images of shape (N, 3, {height}, {width}), got {arr.shape}")
    return np.ascontiguousarray(arr)


def _pins() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for pkg in ("torch", "torchvision", "numpy", "mlflow"):
        try:
            pins.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:  # pragma: no cover
            continue
    return pins


@contextmanager
def _using_tracking_uri(uri: str) -> Iterator[None]:
    """mlflow's global tracking URI set to `uri` for the block; the previous global and the
    MLFLOW_TRACKING_URI variable (which set_tracking_uri also writes) are restored afterwards."""
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_global, saved_env = tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_global)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_reid_model(
    ref: RunRef, model_pt: Path, *, height: int, width: int, registered_name: str | None = None
) -> str:
    """Log model.pt as a pyfunc LoggedModel linked to the run; return its `models:/m-...` URI.

    Logged once per run and model file: the URI and the file's sha256 are kept as run tags, and a
    second call with the same file returns the recorded URI.
    """
    model_pt = Path(model_pt)
    sha = _sha256(model_pt)
    tags = runs.get_run_tags(ref)
    if tags.get(MODEL_SHA_TAG) == sha and tags.get(MODEL_URI_TAG):
        log.info("model already logged for run %s: %s", ref.run_id, tags[MODEL_URI_TAG])
        return tags[MODEL_URI_TAG]
    uri = runs.with_retries(
        lambda: _log(ref, model_pt, height=height, width=width, registered_name=registered_name),
        what="log pyfunc model",
        uri=ref.tracking_uri,
    )
    runs.set_tags(ref, {MODEL_URI_TAG: uri, MODEL_SHA_TAG: sha})
    return uri


def _log(ref: RunRef, model_pt: Path, *, height: int, width: int, registered_name: str | None) -> str:
    import torch

    runs.client(ref.tracking_uri)  # sets the environment defaults
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from ..modeling.net import ReIDNet
    from ..training.checkpoint import load

    saved = load(model_pt)
    constructor = {**saved["constructor"], "pretrained": "none"}
    net = ReIDNet(**constructor)
    net.load_state_dict(saved["state_dict"])
    net.eval()
    example = np.zeros((2, 3, height, width), dtype=np.float32)  # two mean-colour images
    with torch.no_grad():
        dim = int(net(torch.from_numpy(example)).shape[1])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, height, width))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim))]),
    )
    with tempfile.TemporaryDirectory() as tmp:
        config_path, weights_path = Path(tmp) / "config.json", Path(tmp) / "weights.pt"
        config_path.write_text(
            json.dumps(
                {"constructor": constructor, "height": height, "width": width, "embedding_dim": dim}, indent=2
            )
        )
        torch.save(net.state_dict(), weights_path)
        entry = Path(tmp) / "reid_model.py"
        entry.write_text(ENTRY_SCRIPT)
        with _using_tracking_uri(ref.tracking_uri), mlflow.start_run(run_id=ref.run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(entry),
                artifacts={CONFIG_ARTIFACT: str(config_path), WEIGHTS_ARTIFACT: str(weights_path)},
                signature=signature,
                input_example=example,
                pip_requirements=_pins(),
                registered_model_name=registered_name,
            )
    log.info("logged pyfunc model %s (embedding dim %d, input 3x%dx%d)", info.model_uri, dim, height, width)
    return info.model_uri
