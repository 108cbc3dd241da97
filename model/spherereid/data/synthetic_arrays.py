"""The synthetic dataset as in-memory arrays (no files): for benchmarks and GPU checks on a bare machine.

Draws the same planned images as `datasets.synthetic.generate` (JPEG round trip included), decodes them at
the stored size as preprocess does, and splits them as the Market-1501 protocol does: train (labels
0..N-1), query and gallery (raw pids, junk -1 and distractors 0 in the gallery, 1-based cameras).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .datasets.synthetic import draw_shot, plan
from .imageio import decode_resized


@dataclass(frozen=True)
class Split:
    """uint8 images (N, H, W, 3), pids (N,) int64 (train: 0..C-1), camids (N,) int64."""

    images: np.ndarray
    pids: np.ndarray
    camids: np.ndarray


def synthetic_splits(
    *,
    seed: int = 0,
    identities: int = 150,
    stored: tuple[int, int] = (144, 72),
    draw: tuple[int, int] = (128, 64),
    cameras: int = 6,
    images_per_camera: int = 2,
    distractors: int = 100,
    junk: int = 50,
) -> dict[str, Split]:
    """{"train", "query", "gallery"} Splits of `identities` train and `identities` test identities."""
    shots = plan(
        seed=seed,
        train_identities=identities,
        test_identities=identities,
        cameras=cameras,
        images_per_camera=images_per_camera,
        min_cameras=2,
        distractors=distractors,
        junk=junk,
    )
    folders = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    out: dict[str, Split] = {}
    for split, folder in folders.items():
        chosen = [s for s in shots if s.folder == folder]
        images = np.stack([decode_resized(draw_shot(s, seed, *draw), *stored) for s in chosen])
        pids = np.array([s.pid for s in chosen], dtype=np.int64)
        if split == "train":
            pids = np.unique(pids, return_inverse=True)[1].astype(np.int64)
        out[split] = Split(images, pids, np.array([s.cam for s in chosen], dtype=np.int64))
    return out
