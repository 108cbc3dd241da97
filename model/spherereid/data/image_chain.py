"""The one preprocessing chain shared by evaluation, serving, ONNX export and search.

decode -> resize to the stored size (preprocess's bilinear PIL resize) -> resize to the network input size
(antialiased bilinear) -> normalise -> [network in the chain's precision (fp32 | bf16 autocast,
channels_last), averaged with the mirror image] -> L2.
A chain.json without `precision` (written before the chain recorded it) is fp32.

The first step (to uint8 at the stored size) is `ImageChain.stored`/`stored_batch`; the rest is
`EvalTransform` + `inference.extract_features`, exactly as the evaluate stage runs them. A number
measured through one front end therefore holds in the others.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..config import TransformConfig
from .cpu_quota import usable_cpus
from .imageio import BadImage, check_size, decode_resized, resize_rgb
from .transforms import EvalTransform


@dataclass(frozen=True)
class ImageChain:
    """Sizes and normalisation of the chain; stored with every model so that it is served as evaluated."""

    stored_size: tuple[int, int]  # (height, width) of the prepared arrays (data.stored_height/width)
    input_size: tuple[int, int]  # (height, width) of the network input (transform.crop_height/width)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    flip: bool = True  # average the embeddings of the image and its mirror (evaluate.flip)
    precision: str = "fp32"  # the network's autocast precision as evaluated: fp32 | bf16 (never 'auto')

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(
                f"ImageChain.precision must be fp32 or bf16 (chain.json), got {self.precision!r}"
            )
        for name in ("stored_size", "input_size"):
            value = getattr(self, name)
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"ImageChain.{name} must be (height, width) >= 1, got {value}")
            object.__setattr__(self, name, (int(value[0]), int(value[1])))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_config(
        cls, stored_size: tuple[int, int], transform: TransformConfig, flip: bool, precision: str = "fp32"
    ) -> ImageChain:
        """The evaluation's chain: arrays stored at `stored_size`, the `transform` section's input size and
        normalisation, `flip` (evaluate.flip), the extraction `precision` (evaluate.precision resolved)."""
        return cls(
            stored_size=stored_size,
            input_size=(transform.crop_height, transform.crop_width),
            mean=transform.mean,  # tuples of 3 floats (TransformConfig)
            std=transform.std,
            flip=flip,
            precision=precision,
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ImageChain:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**values)

    def stored(self, source: bytes | Image.Image | np.ndarray) -> np.ndarray:
        """Encoded image bytes (JPEG, PNG, ...), an image opened with imageio.open_header (decoded and
        closed here) or a uint8 (H, W, 3) array of any size -> uint8 at the stored size
        (stored_h, stored_w, 3). Raises BadImage with the reason."""
        height, width = self.stored_size
        if isinstance(source, bytes | bytearray | memoryview):
            return decode_resized(bytes(source), height, width)
        if isinstance(source, Image.Image):
            return decode_resized(source, height, width)
        arr = np.asarray(source)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise BadImage(f"expected uint8 (H, W, 3) pixels, got {arr.dtype} {arr.shape}")
        check_size((arr.shape[1], arr.shape[0]))
        if arr.shape[:2] == (height, width):
            return np.ascontiguousarray(arr)
        return resize_rgb(Image.fromarray(np.ascontiguousarray(arr), "RGB"), height, width)

    def stored_batch(
        self, sources: Sequence[bytes | Image.Image | np.ndarray], workers: int | None = None
    ) -> np.ndarray:
        """Sources -> uint8 (N, stored_h, stored_w, 3); the first bad one raises BadImage naming its row.

        Rows are decoded by `workers` threads (default: one per CPU this process may use,
        cpu_quota.usable_cpus; Pillow releases the GIL while it decodes and resizes), each with
        `stored`, straight into one preallocated array: the pixels are those of a one-by-one loop, and
        the reported row is the first bad one in row order."""
        out = np.empty((len(sources), *self.stored_size, 3), dtype=np.uint8)

        def fill(row: int) -> str | None:
            try:
                out[row] = self.stored(sources[row])
            except BadImage as exc:
                return f"row {row}: {exc}"
            return None

        workers = min(workers or usable_cpus(), len(sources))
        if workers <= 1:
            failures: Iterable[str | None] = map(fill, range(len(sources)))
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
                failures = list(pool.map(fill, range(len(sources))))
        failure = next((f for f in failures if f is not None), None)
        if failure is not None:
            raise BadImage(failure)
        return out

    def eval_transform(self) -> EvalTransform:
        """uint8 (B, stored_h, stored_w, 3) -> normalised float32 (B, 3, input_h, input_w)."""
        return EvalTransform(size=self.input_size, mean=self.mean, std=self.std)


def model_key(weights_file: Path, chain: ImageChain) -> str:
    """sha256 of a weights file's bytes (model.pt, or a logged model's weights) and the chain: the
    identity of one served model, and of the gallery index built with it."""
    digest = hashlib.sha256()
    with open(weights_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(chain.to_dict(), sort_keys=True).encode())
    return digest.hexdigest()
