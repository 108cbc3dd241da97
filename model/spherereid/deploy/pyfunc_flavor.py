"""The served model: an MLflow pyfunc that applies exactly the chain the evaluate stage measured.

Input: a DataFrame column `image` of encoded image bytes (JPEG, PNG, ...; base64 strings in JSON):

    POST /invocations {"dataframe_split": {"columns": ["image"], "data": [["<base64>"], ...]}}

Called in Python, a row may also hold a uint8 (H, W, 3) array of any size. Each row goes through
`ImageChain` (decode -> stored size -> input size -> normalise) and `inference.extract_features`
(average with the mirror image, L2): output float32 (N, D) unit rows, equal to the evaluate stage's
features.npz for the same files. A bad row fails the request with HTTP 400 naming the row and the problem.

Limits (serve_limits: SPHEREREID_SERVE_MAX_ROWS, SPHEREREID_SERVE_MAX_PIXELS, read when the model loads):
a request over the rows per request, or whose image headers sum to more decoded pixels than the budget,
gets a one-line HTTP 400 naming the limit and the variable that raises it, before anything is decoded.
One request is decoded and embedded at a time per server process (ONE_REQUEST_AT_A_TIME), in as many
threads as the server may use CPUs. The column `image` is optional in the signature so that a request
without it reaches predict (MLflow's own "missing inputs" error would echo the request) and gets a
one-line 400 naming the expected column. load_context refuses weights whose sha256 is not the one
recorded when the model was logged (training/saved_model.py).

Artifacts: config.json (constructor kwargs, embedding dim, the ImageChain, the weights' sha256) and a
state_dict loaded with `torch.load(weights_only=True)`: no pickled network (training/saved_model.py writes
and reads them). The model is logged "from code": MLflow stores the entry script (ENTRY_SCRIPT) with the
model and runs it on every load, so serving needs `spherereid` importable (`mlflow models serve
--env-manager local` in our venv or image) and the module path that script imports stays a contract.
Versions logged by the code of 2026-11-28 to 2026-12-02 (commits d17597b, 6ec65fc, 2588003, ea32a01;
before 17d0e3d moved this module here) import `spherereid.tracking.pyfunc_model`: that path is kept as a
shim (tracking/pyfunc_model.py) so that they still load. Their config.json has no weights sha256: they
load unverified, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.image_chain import ImageChain, model_key
from ..data.imageio import BadImage, open_header
from ..tracking import tags
from ..tracking.client import client
from ..tracking.runs import RunRef
from ..training import saved_model
from .flavors import log_as_run_output, log_once, logged_model_name, pip_pins
from .serve_limits import RequestTooLarge, ServeLimits

log = logging.getLogger(__name__)

IMAGE_COLUMN = "image"
PREDICT_BATCH = 64
# one request decoded and embedded at a time per process: the memory bound of serve_limits holds per
# server, whatever the number of clients (MLflow's scoring server runs each request in a thread)
ONE_REQUEST_AT_A_TIME = threading.Lock()
ENTRY_SCRIPT = (
    "# Model entry point (MLflow models-from-code): the network is rebuilt in load_context.\n"
    "import mlflow\n\n"
    "from spherereid.deploy.pyfunc_flavor import ReIDEmbeddingModel\n\n"
    "mlflow.models.set_model(ReIDEmbeddingModel())\n"
)

try:  # the base class only when mlflow is installed; the module must stay importable without it
    from mlflow.pyfunc import PythonModel as _Base
except ImportError:  # pragma: no cover
    _Base = object  # type: ignore[misc,assignment]


class ReIDEmbeddingModel(_Base):
    """pyfunc wrapper: load_context rebuilds the network and the chain; predict maps images to embeddings."""

    def __init__(self) -> None:
        # built when MLflow loads the model (the entry script): the limits of the server's environment
        self.limits = ServeLimits.from_env()

    def load_context(self, context) -> None:
        from ..device import resolve_device

        saved = saved_model.load_pyfunc(context.artifacts, what="the served model")  # weights verified
        self.chain = saved.served_chain()
        self.device = resolve_device("auto")
        self.net = saved.net.to(self.device).eval()
        self.embedding_dim = saved.embedding_dim

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> np.ndarray:
        """A DataFrame of image bytes (or uint8 (H, W, 3) arrays) in column `image` -> float32 (N, D)
        unit rows. (model_input carries no type hint: MLflow would build a schema from it.)"""
        import torch

        from ..inference import extract_features

        try:
            values = image_column(model_input)
            self.limits.check_rows(len(values))
            rows = opened_rows([_row(row, value) for row, value in enumerate(values)])
            self.limits.check_pixels([row_pixels(row) for row in rows])
            with ONE_REQUEST_AT_A_TIME:
                images = self.chain.stored_batch(rows, workers=self.limits.decode_threads)
                if len(images) == 0:
                    return np.zeros((0, self.embedding_dim), dtype=np.float32)
                with torch.no_grad():
                    return extract_features(
                        self.net,
                        images,
                        self.chain.eval_transform(),
                        batch_size=PREDICT_BATCH,
                        device=self.device,
                        flip=self.chain.flip,
                        precision=self.chain.precision,  # exactly the evaluated chain
                        progress=False,
                    )
        except (BadImage, RequestTooLarge) as exc:
            raise _bad_request(str(exc)) from None


def _bad_request(message: str) -> Exception:
    """An MlflowException the scoring server answers with HTTP 400 whose body is `message` alone.

    MLflow's scoring server (pyfunc/scoring_server `invocations`, 3.x) rewrites every MlflowException from
    predict as `e.message = f"Failed to predict data '{data}'..."`, which puts the request (image bytes)
    into the response; any other exception becomes a generic 400 with a traceback. So the message of this
    one ignores that assignment: the client reads the row and the reason, and no payload is echoed."""
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
    except ImportError:  # pragma: no cover
        return ValueError(message)

    class BadRowError(MlflowException):
        @property
        def message(self) -> str:
            return message

        @message.setter
        def message(self, _value: str) -> None:  # the server's rewrite (and the base __init__) are ignored
            pass

    return BadRowError(message, error_code=INVALID_PARAMETER_VALUE)


def image_rows(model_input: Any) -> list[bytes | np.ndarray]:
    """The `image` column of a DataFrame (or a dict of columns, or a plain list; or a uint8 (N, H, W, 3)
    array) as a list of bytes / uint8 arrays. Base64 text is decoded. Raises BadImage naming the row."""
    return [_row(row, value) for row, value in enumerate(image_column(model_input))]


def image_column(model_input: Any) -> list[Any]:
    """The values of the `image` column (or of a plain list, or the images of a uint8 (N, H, W, 3)
    array), not yet decoded; BadImage naming the expected column when there is none."""
    import pandas as pd

    if isinstance(model_input, pd.DataFrame | dict):
        if IMAGE_COLUMN not in model_input:
            # (MLflow drops the columns its signature does not name before predict: none are left)
            have = ", ".join(map(str, list(model_input.keys())))
            raise BadImage(
                f"no '{IMAGE_COLUMN}' column{f' (columns: {have})' if have else ''} in the request; send "
                f"one image per row in a column named '{IMAGE_COLUMN}'"
            )
        return list(model_input[IMAGE_COLUMN])
    if isinstance(model_input, np.ndarray) and model_input.dtype == np.uint8 and model_input.ndim == 4:
        return list(model_input)
    if isinstance(model_input, list | tuple):
        return list(model_input)
    raise BadImage(f"expected a DataFrame with an '{IMAGE_COLUMN}' column, got {type(model_input).__name__}")


def opened_rows(rows: list[bytes | np.ndarray]) -> list[bytes | Image.Image | np.ndarray]:
    """Each row of image bytes opened with its header alone read (imageio.open_header: size known, nothing
    decoded; the same opened image is decoded later, so the header is read once). A row whose header
    cannot be read stays bytes: decoding names it, in row order, as before the limits existed."""
    opened: list[bytes | Image.Image | np.ndarray] = []
    for row in rows:
        try:
            opened.append(open_header(row) if isinstance(row, bytes) else row)
        except BadImage:
            opened.append(row)
    return opened


def row_pixels(row: bytes | Image.Image | np.ndarray) -> int:
    """width x height of an opened image or an array; 0 for bytes whose header could not be read."""
    if isinstance(row, Image.Image):
        return int(row.size[0]) * int(row.size[1])
    if isinstance(row, np.ndarray) and row.ndim >= 2:
        return int(row.shape[0]) * int(row.shape[1])
    return 0


def _row(row: int, value: Any) -> bytes | np.ndarray:
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise BadImage(f"row {row}: not base64-encoded image bytes") from None
    elif isinstance(value, np.ndarray) and value.ndim == 3:
        return value
    else:
        raise BadImage(f"row {row}: expected image bytes, got {type(value).__name__}")
    if not data:
        raise BadImage(f"row {row}: empty image (0 bytes)")
    return data


def example_png(chain: ImageChain) -> bytes:
    """One mean-colour PNG at the stored size (the logged input example)."""
    from PIL import Image

    colour = tuple(int(round(255 * m)) for m in chain.mean)
    buf = io.BytesIO()
    Image.new("RGB", (chain.stored_size[1], chain.stored_size[0]), colour).save(buf, format="PNG")
    return buf.getvalue()


def log_reid_model(
    ref: RunRef, model_pt: Path, *, chain: ImageChain, dataset: str, registered_name: str | None = None
) -> str:
    """Log model.pt with its evaluated chain as a pyfunc LoggedModel (named `spherereid-<dataset>-
    <backbone>-<head>`) output by the run; return its `models:/m-...` URI. Logged once per model file and
    chain (a run tag records the pair)."""
    model_pt = Path(model_pt)
    return log_once(
        ref,
        model_key(model_pt, chain),
        uri_tag=tags.MODEL_URI,
        key_tag=tags.MODEL_KEY,
        what="pyfunc model",
        log_model=lambda: _log(ref, model_pt, chain=chain, dataset=dataset, registered_name=registered_name),
    )


def _log(ref: RunRef, model_pt: Path, *, chain: ImageChain, dataset: str, registered_name: str | None) -> str:
    import pandas as pd
    import torch

    client(ref.tracking_uri)  # sets the environment defaults
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema, TensorSpec

    net = saved_model.load_model(model_pt)
    constructor = dict(net.constructor_args)
    with torch.no_grad():
        dim = int(net(torch.zeros(2, 3, *chain.input_size)).shape[1])
    signature = ModelSignature(
        # optional: a request without the column reaches predict, which names the column in a one-line
        # 400; required, MLflow answers "Failed to predict data '<the request>'..." (the payload echoed)
        inputs=Schema([ColSpec(DataType.binary, IMAGE_COLUMN, required=False)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, dim))]),
    )
    example = pd.DataFrame({IMAGE_COLUMN: [example_png(chain)]})
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = saved_model.write_pyfunc_artifacts(net, dim, chain, Path(tmp))
        entry = Path(tmp) / "reid_model.py"
        entry.write_text(ENTRY_SCRIPT)
        name = logged_model_name(dataset, constructor)
        uri = log_as_run_output(
            ref,
            name,
            lambda model_id: mlflow.pyfunc.log_model(
                name=name,
                model_id=model_id,
                python_model=str(entry),
                artifacts=artifacts,
                signature=signature,
                input_example=example,
                pip_requirements=pip_pins(),
                registered_model_name=registered_name,
            ),
        )
    log.info("logged pyfunc model %s as %s (embedding dim %d, chain %s)", uri, name, dim, chain.to_dict())
    return uri
