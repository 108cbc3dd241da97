"""Feature extraction: the evaluated chain's network pass, used by evaluate, cross-evaluate, serving,
export and search (``extract_features``); the query and gallery of a prepared set through an evaluated
chain (``extract_splits``, what evaluate, its precision check and cross-evaluate rank)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.batches import device_slices
from .data.transforms import EvalTransform
from .device import AUTOCAST_DTYPES, check_device, effective_precision, memory_format
from .progress import tqdm

if TYPE_CHECKING:
    from .data.image_chain import ImageChain
    from .data.manifest import SplitData

log = logging.getLogger(__name__)

# On a GPU extraction runs in bf16 with channels_last and at least this batch size (fp32 on the CPU, with
# evaluate.batch_size): the mAP moves by less than 0.1 point (benchmarks/extract_speed.py measures it).
GPU_EXTRACT_BATCH = 512


def extract_splits(
    load_model: Callable[[torch.device], nn.Module],
    chain: ImageChain,
    query: SplitData,
    gallery: SplitData,
    batch_size: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Query (Q, D) and gallery (G, D) features through the evaluated chain, in its precision; a larger
    batch on a GPU, `batch_size` (evaluate.batch_size) on the CPU. `load_model(device)` reads the model
    onto `device` (a train stage's model.pt: training.saved_model.load_model), after the device check."""
    on_gpu = device.type == "cuda"
    precision = chain.precision
    batch = max(batch_size, GPU_EXTRACT_BATCH) if on_gpu else batch_size
    log.info("extracting on %s: precision %s, batch %d", check_device(device), precision, batch)
    net = load_model(device)
    tf = chain.eval_transform()
    qf, gf = (
        extract_features(
            net,
            split.images,
            tf,
            batch_size=batch,
            precision=precision,
            device=device,
            flip=chain.flip,
            desc=f"{name} features",
        )
        for name, split in (("query", query), ("gallery", gallery))
    )
    return qf, gf


def extract_features(
    model: nn.Module,
    images: np.ndarray,
    transform: EvalTransform,
    *,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    flip: bool = True,
    progress: bool = True,
    desc: str = "features",
    precision: str = "fp32",
) -> np.ndarray:
    """Embed uint8 images (N, H, W, 3) -> float32 (N, D), L2-normalised.

    With `flip`, the embeddings of each image and its mirror are summed before normalising. The next
    batch is gathered while this one runs and the features stay on the device until the end (no host
    sync per batch). The network runs under autocast in `precision` (resolved as in
    `device.effective_precision`: 'auto' is bf16 where the device computes bf16 natively), in
    `device.memory_format`'s layout (channels_last except fp32 on the CPU). The layout conversion happens
    outside inference mode, so the parameters stay ordinary tensors (trainable after).
    """
    model.eval()
    device = torch.device(device)
    effective = effective_precision(precision, device)
    dtype = AUTOCAST_DTYPES[effective]
    layout = memory_format(device, effective)
    model.to(memory_format=layout)  # type: ignore[call-overload]  # outside inference_mode: see above
    with torch.inference_mode():
        chunks = _embed_batches(
            model, images, transform, batch_size, device, flip, dtype, layout, progress, desc
        )
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).cpu().numpy().astype(np.float32, copy=False)


def _embed_batches(
    model: nn.Module,
    images: np.ndarray,
    transform: EvalTransform,
    batch_size: int,
    device: torch.device,
    flip: bool,
    dtype: torch.dtype | None,
    layout: torch.memory_format,
    progress: bool,
    desc: str,
) -> list[torch.Tensor]:
    """The L2-normalised float32 (b, D) embeddings of each batch, still on `device`."""
    chunks: list[torch.Tensor] = []
    batches = device_slices(images, batch_size, device)
    total = -(-len(images) // batch_size)
    for raw in tqdm(
        batches, total=total, desc=desc, unit="batch", disable=None if progress else True, leave=False
    ):
        x = transform(raw).contiguous(memory_format=layout)
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            emb = model(x).float()
            if flip:
                emb = emb + model(x.flip(-1)).float()
        chunks.append(F.normalize(emb, dim=1))
    return chunks
