"""Proof that an exported ONNX model computes what PyTorch computes, on labelled query/gallery images.

The PyTorch side is the evaluate stage's own path (`extract_features` with `ImageChain.eval_transform()`
and `chain.flip`); the ONNX side is onnxruntime's CPU provider. Checks, in order, each naming itself
when it fails: every row's cosine >= `min_cosine` at every batch size; the rows do not depend on the
batch size; rank-1 and mAP are identical.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ..data.image_chain import ImageChain
from ..data.manifest import SplitData
from ..evaluation.metrics import evaluate_features
from ..inference import extract_features
from ..tracking.tags import ONNX_PARITY_PREFIX
from .onnx_export import OnnxEmbedder

log = logging.getLogger(__name__)

BATCH_SIZES = (1, 7, 64)
MIN_COSINE = 0.99999
BATCH_TOLERANCE = 1e-5  # max |difference| between the rows of two batch sizes


class ParityError(RuntimeError):
    """The exported model disagrees with PyTorch; the message names the failed check."""


@dataclass(frozen=True)
class ParityReport:
    """What was shown: the worst row cosine, the batch sizes, and the metrics on both sides."""

    rows: int
    batch_sizes: tuple[int, ...]
    min_cosine: float
    max_batch_difference: float
    rank1_torch: float
    rank1_onnx: float
    map_torch: float
    map_onnx: float

    def tags(self, prefix: str = ONNX_PARITY_PREFIX) -> dict[str, str]:
        """Flat string tags for a registry version."""
        out = {f"{prefix}{k}": str(v) for k, v in asdict(self).items() if k != "batch_sizes"}
        out[f"{prefix}batch_sizes"] = ",".join(str(b) for b in self.batch_sizes)
        return out


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each pair of rows of a, b (N, D) -> (N,)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    denom = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return (a64 * b64).sum(axis=1) / np.maximum(denom, 1e-12)


def rank1_and_map(
    qf: np.ndarray, gf: np.ndarray, query: SplitData, gallery: SplitData
) -> tuple[float, float]:
    """rank-1 and mAP (fractions) of query features `qf` against gallery features `gf`, cosine distance."""
    res = evaluate_features(qf, gf, query.pids, gallery.pids, query.camids, gallery.camids, metric="cosine")
    return res.rank(1), float(res.mAP)


@dataclass(frozen=True)
class RowAgreement:
    """Per-row agreement of ONNX with PyTorch: worst cosine, spread across batch sizes, both outputs."""

    min_cosine: float
    max_batch_difference: float
    onnx: np.ndarray
    torch: np.ndarray


def check_rows(
    *,
    net: nn.Module,
    chain: ImageChain,
    onnx_path: str | Path,
    images: np.ndarray,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    min_cosine: float = MIN_COSINE,
) -> RowAgreement:
    """The first two checks on uint8 (N, stored_h, stored_w, 3) images; ParityError when one fails."""
    if tuple(images.shape[1:3]) != chain.stored_size:
        raise ParityError(
            f"parity check 'input size' failed: images are {tuple(images.shape[1:3])}, the chain stores "
            f"{chain.stored_size}"
        )
    # the ONNX graph is fp32 whatever chain.precision says: it is compared with an fp32 PyTorch reference
    reference = extract_features(
        net, images, chain.eval_transform(), flip=chain.flip, precision="fp32", progress=False
    )
    session = OnnxEmbedder(onnx_path)
    outputs: dict[int, np.ndarray] = {}
    worst = 1.0
    for size in batch_sizes:
        out = session(images, batch_size=size)
        if out.shape != reference.shape:
            raise ParityError(
                f"parity check 'shape' failed at batch size {size}: ONNX {out.shape} vs PyTorch "
                f"{reference.shape}"
            )
        cos = row_cosines(out, reference)
        row = int(np.argmin(cos))
        if not cos[row] >= min_cosine:  # NaN fails too
            raise ParityError(
                f"parity check 'cosine' failed at batch size {size}: row {row} has cosine "
                f"{cos[row]:.7f} < {min_cosine}"
            )
        worst = min(worst, float(cos[row]))
        outputs[size] = out
    first = outputs[batch_sizes[0]]
    spread = max(float(np.abs(out - first).max()) for out in outputs.values())
    if not spread <= BATCH_TOLERANCE:
        raise ParityError(
            f"parity check 'batch sizes' failed: rows differ by up to {spread:.2e} (> {BATCH_TOLERANCE}) "
            f"across batch sizes {', '.join(map(str, batch_sizes))}"
        )
    return RowAgreement(worst, spread, first, reference)


def check_parity(
    *,
    net: nn.Module,
    chain: ImageChain,
    onnx_path: str | Path,
    query: SplitData,
    gallery: SplitData,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    min_cosine: float = MIN_COSINE,
) -> ParityReport:
    """All three checks on query + gallery (uint8 at the stored size); ParityError on any failure."""
    report, _ = check_parity_rows(
        net=net,
        chain=chain,
        onnx_path=onnx_path,
        query=query,
        gallery=gallery,
        batch_sizes=batch_sizes,
        min_cosine=min_cosine,
    )
    return report


def check_parity_rows(
    *,
    net: nn.Module,
    chain: ImageChain,
    onnx_path: str | Path,
    query: SplitData,
    gallery: SplitData,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    min_cosine: float = MIN_COSINE,
) -> tuple[ParityReport, np.ndarray]:
    """`check_parity`, also returning the ONNX rows of query + gallery (query first): the fp32 reference
    an int8 model is compared with."""
    images = np.concatenate([np.asarray(query.images), np.asarray(gallery.images)])
    rows = check_rows(
        net=net,
        chain=chain,
        onnx_path=onnx_path,
        images=images,
        batch_sizes=batch_sizes,
        min_cosine=min_cosine,
    )
    nq = len(query)
    rank1_t, map_t = rank1_and_map(rows.torch[:nq], rows.torch[nq:], query, gallery)
    rank1_o, map_o = rank1_and_map(rows.onnx[:nq], rows.onnx[nq:], query, gallery)
    if rank1_t != rank1_o or map_t != map_o:
        raise ParityError(
            f"parity check 'rank-1/mAP' failed: PyTorch rank-1 {rank1_t:.6f} mAP {map_t:.6f} vs ONNX "
            f"rank-1 {rank1_o:.6f} mAP {map_o:.6f}"
        )
    report = ParityReport(
        len(images),
        tuple(batch_sizes),
        rows.min_cosine,
        rows.max_batch_difference,
        rank1_t,
        rank1_o,
        map_t,
        map_o,
    )
    log.info(
        "ONNX parity shown on %d images: min cosine %.7f, rank-1 %.4f, mAP %.4f",
        len(images),
        rows.min_cosine,
        rank1_o,
        map_o,
    )
    return report, rows.onnx
