"""Training throughput: the full step fed by the real data path vs. the bare step on random tensors.

    python benchmarks/train_throughput.py [--params params.yaml] [--steps 12] [--images 2000]

Real data path: uint8 images in a prepared .npy memmap on disk -> P x K balanced batches -> gather
(prefetched in a thread) -> random crop / flip / normalise -> forward + sphere softmax + backward +
Adam step. Bare: the same model, loss and optimizer on a pre-made random float batch of the same shape.
Prints images/s of both and the ratio (goal >= 0.90: the input pipeline costs under 10%).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spherereid.config import load_params
from spherereid.data.batches import TrainBatches
from spherereid.data.manifest import create_image_array, image_array_path
from spherereid.data.sampler import BalancedIdentitySampler
from spherereid.data.transforms import build_transforms
from spherereid.modeling.losses import build_loss
from spherereid.modeling.net import ReIDNet


def _step(model, criterion, optimizer, x, y) -> None:
    loss, _ = criterion(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--steps", type=int, default=12, help="timed steps per path")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--images", type=int, default=2000, help="images in the on-disk prepared array")
    args = parser.parse_args()
    p = load_params(args.params)
    torch.manual_seed(0)
    t, s = p.transform, p.sampler
    ids = max(s.p * 4, args.images // 8)
    labels = np.arange(args.images) % ids
    model = ReIDNet(**{**dataclasses.asdict(p.model), "pretrained": "none"})
    criterion = build_loss(
        p.loss.type,
        embedding_dim=model.embedding_dim,
        num_classes=ids,
        scale=p.loss.scale,
        margin=p.loss.margin,
    )
    optimizer = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=1e-4)
    model.train()
    train_tf, _ = build_transforms(**dataclasses.asdict(t))
    with tempfile.TemporaryDirectory() as tmp:
        arr = create_image_array(Path(tmp), "train", args.images, p.data.stored_height, p.data.stored_width)
        arr[:] = np.random.default_rng(0).integers(0, 256, size=arr.shape, dtype=np.uint8)
        arr.flush()
        del arr
        images = np.load(image_array_path(Path(tmp), "train"), mmap_mode="r")
        sampler = BalancedIdentitySampler(labels.tolist(), p=s.p, k=s.k, seed=0)
        batches = TrainBatches(
            images, labels, sampler, train_tf, torch.Generator().manual_seed(0), torch.device("cpu")
        )

        def real_stream():
            epoch = 0
            while True:
                sampler.set_epoch(epoch)
                yield from batches
                epoch += 1

        stream = real_stream()
        start = time.perf_counter()
        for _ in range(args.steps):
            next(stream)
        data_only = (time.perf_counter() - start) / args.steps
        for _ in range(args.warmup):
            _step(model, criterion, optimizer, *next(stream))
        start = time.perf_counter()
        for _ in range(args.steps):
            _step(model, criterion, optimizer, *next(stream))
        real = time.perf_counter() - start

    x = torch.randn(s.batch_size, 3, t.crop_height, t.crop_width)
    y = torch.as_tensor(labels[: s.batch_size], dtype=torch.int64)
    for _ in range(args.warmup):
        _step(model, criterion, optimizer, x, y)
    start = time.perf_counter()
    for _ in range(args.steps):
        _step(model, criterion, optimizer, x, y)
    bare = time.perf_counter() - start

    n = args.steps * s.batch_size
    print(
        f"model {p.model.backbone}/{p.model.head}, batch {s.batch_size} ({s.p}x{s.k}), input "
        f"{t.crop_height}x{t.crop_width}, stored {p.data.stored_height}x{p.data.stored_width}, "
        f"{torch.get_num_threads()} threads, {args.steps} steps"
    )
    print(f"real data path : {n / real:8.1f} images/s")
    print(f"bare step      : {n / bare:8.1f} images/s")
    print(f"ratio real/bare: {bare / real:8.3f}  (goal >= 0.90)")
    step = bare / args.steps
    print(
        f"data path alone: {data_only * 1000:8.1f} ms/batch vs {step * 1000:.0f} ms/bare step; even "
        f"unoverlapped it bounds the ratio at >= {step / (step + data_only):.3f}"
    )


if __name__ == "__main__":
    main()
