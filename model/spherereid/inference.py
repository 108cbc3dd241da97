"""Feature extraction: the evaluated chain's network pass, used by evaluate, serving, export and search."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.batches import device_slices
from .data.transforms import EvalTransform
from .device import AUTOCAST_DTYPES, effective_precision
from .progress import tqdm


@torch.inference_mode()
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
    sync per batch). On CUDA the network runs in channels_last under autocast in `precision` (bf16 for
    speed); on the CPU in fp32, whatever `precision` says.
    """
    model.eval()
    device = torch.device(device)
    dtype = AUTOCAST_DTYPES[effective_precision(precision, device)]
    memory_format = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    if device.type == "cuda":
        model.to(memory_format=memory_format)
    chunks: list[torch.Tensor] = []
    batches = device_slices(images, batch_size, device)
    total = -(-len(images) // batch_size)
    for raw in tqdm(
        batches, total=total, desc=desc, unit="batch", disable=None if progress else True, leave=False
    ):
        x = transform(raw)
        if device.type == "cuda":  # on the CPU the layout stays as the transform made it (same numbers)
            x = x.contiguous(memory_format=memory_format)
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype is not None):
            emb = model(x).float()
            if flip:
                emb = emb + model(x.flip(-1)).float()
        chunks.append(F.normalize(emb, dim=1))
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).cpu().numpy().astype(np.float32, copy=False)
