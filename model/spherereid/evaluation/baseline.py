"""The raw-pixel matching baseline: the figure a trained model has to beat on a prepared set.

Each image is area-averaged down to 32x16, standardised per image (zero mean, unit variance over
all its values) and compared by cosine similarity; ranking uses the Market protocol (gallery images
of the query's identity in the query's camera are ignored).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FEATURE_HEIGHT, FEATURE_WIDTH = 32, 16


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of exact area averaging: row i averages input span [i*n_in/n_out, (i+1)*...)."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return overlap / (n_in / n_out)


def raw_pixel_features(
    images: np.ndarray, height: int = FEATURE_HEIGHT, width: int = FEATURE_WIDTH, chunk: int = 512
) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, height*width*3) float32: area-downsampled, standardised per image."""
    n, h, w, _ = images.shape
    ah = area_matrix(h, height).astype(np.float32)
    aw = area_matrix(w, width).astype(np.float32)
    out = np.empty((n, height * width * 3), dtype=np.float32)
    for s in range(0, n, chunk):
        x = np.asarray(images[s : s + chunk], dtype=np.float32)
        small = np.einsum("ih,nhwc,jw->nijc", ah, x, aw, optimize=True).reshape(len(x), -1)
        small -= small.mean(axis=1, keepdims=True)
        small /= small.std(axis=1, keepdims=True) + 1e-6
        out[s : s + chunk] = small
    return out


def raw_pixel_baseline(
    query: np.ndarray,
    gallery: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
) -> dict[str, Any]:
    """Rank-1 and mAP (fractions) of raw-pixel cosine matching; images (N, H, W, 3) uint8."""
    from .metrics import evaluate_features

    qf, gf = raw_pixel_features(query), raw_pixel_features(gallery)
    result = evaluate_features(
        qf,
        gf,
        np.asarray(q_pids),
        np.asarray(g_pids),
        np.asarray(q_camids),
        np.asarray(g_camids),
        metric="cosine",
    )
    d = result.to_dict()
    return {
        "method": f"raw pixels {FEATURE_HEIGHT}x{FEATURE_WIDTH}, per-image standardised, cosine",
        "rank1": float(d["rank1"]),
        "mAP": float(d["mAP"]),
    }
