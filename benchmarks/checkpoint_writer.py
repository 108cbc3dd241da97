"""The checkpoint writer's speed against an epoch: does the disk set the paper recipe's training speed?

    python benchmarks/checkpoint_writer.py [--writes 3] [--dir PATH] [--img-per-s 4500] [--epoch-s S]

Builds the paper recipe's training state (params-paper.yaml: ResNet-50, head D, 1024-d, Sphere Softmax over
Market-1501's 751 identities, Adam with its two moments: about 317 MB) with the trainer's own set-up,
gives Adam its state with one step, and writes it `--writes` times through the real writer
(`CheckpointWriter.submit_snapshot`: host snapshot, then torch.save hashed as it writes, fsync, keep the
previous checkpoint, rename, sidecar) into a temporary folder on this machine's disk (`--dir`: elsewhere).
Prints the file size, the snapshot time (the training thread waits for it) and the background write time
and GB/s, next to the epoch time: a Market-size P x K epoch at `--img-per-s` (default 4,500 img/s, the
issue's H100 figure; about 0.65 s) or `--epoch-s`. The ratio write / epoch above 1 means a checkpoint
every epoch would make training wait for the disk; the paper recipe therefore checkpoints every 5 minutes
(`train.checkpoint_every: 5min`), a share of write / 300 s.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "model"))

from spherereid.config import FitConfig, checkpoint_cadence, load_params  # noqa: E402
from spherereid.training import checkpoint, distributed, resume, trainer  # noqa: E402
from spherereid.training.step import EpochStats  # noqa: E402

MARKET_IMAGES, MARKET_IDS = 12936, 751  # Market-1501's training split
ISSUE_IMG_PER_S = 4500.0  # a Market-size epoch in about 0.65 s on one GPU


def paper_parts() -> tuple[resume.TrainingParts, np.ndarray, FitConfig]:
    """The paper recipe's training parts on the CPU (fp32, random initial weights), with Adam's state."""
    params = load_params(ROOT / "params-paper.yaml")
    config = FitConfig.from_params(params)
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, pretrained="none"),
        train=dataclasses.replace(config.train, device="cpu", precision="fp32", cuda_graphs=False),
    )
    labels = np.arange(MARKET_IMAGES) % MARKET_IDS
    place = trainer._placement(config.train, None)
    parts = trainer._build_parts(labels, MARKET_IDS, config, place)
    for p in list(parts.model.parameters()) + list(parts.criterion.parameters()):
        p.grad = torch.zeros_like(p)
    parts.optimizer.step()  # exp_avg and exp_avg_sq for every parameter, as after the first step
    return parts, labels, config


def write_times(parts: resume.TrainingParts, folder: Path, writes: int) -> list[tuple[float, float]]:
    """(snapshot s, background write s) of each write of the training state through CheckpointWriter."""
    ctx = distributed.DistContext()
    history = [EpochStats(epoch=0, loss=1.0, accuracy=0.0, lr=1e-3, images=1, seconds=1.0)]
    state = resume.training_state(1, parts, history, {"benchmark": True}, ctx)
    writer = checkpoint.CheckpointWriter()
    times = []
    try:
        for _ in range(writes):
            start = time.perf_counter()
            writer.submit_snapshot(state, folder / "last.pt")
            submitted = time.perf_counter()
            writer.wait()
            times.append((submitted - start, time.perf_counter() - submitted))
    finally:
        writer.close()
    return times


def epoch_seconds(labels: np.ndarray, config: FitConfig, img_per_s: float) -> tuple[int, float]:
    """(images, seconds) of one P x K epoch of the paper's sampler over Market-size labels."""
    from spherereid.data.sampler import build_sampler

    sampler = build_sampler(config.sampler, labels.tolist(), seed=0)
    images = len(sampler) * config.sampler.batch_size
    return images, images / img_per_s


def report(
    size: int, times: list[tuple[float, float]], epoch: float, source: str, every_s: float, where: Path
) -> None:
    snap, write = (statistics.median(t[i] for t in times) for i in (0, 1))
    each = [", ".join(f"{t[i]:.3f}" for t in times) for i in (0, 1)]
    print(f"paper-recipe checkpoint: {size / 1e6:.0f} MB, {len(times)} writes into {where}")
    print(f"  snapshot (training waits):  {snap:.3f} s (median of {each[0]})")
    print(
        f"  background write:           {write:.3f} s = {size / write / 1e9:.2f} GB/s (median of {each[1]})"
    )
    print(f"  Market-size epoch:          {epoch:.3f} s ({source})")
    print(
        f"  write / epoch:              {write / epoch:.2f} (> 1: checkpoints every epoch wait for the disk)"
    )
    print(f"  disk to keep up each epoch: {size / epoch / 1e9:.2f} GB/s")
    if every_s:
        print(f"  params-paper.yaml every {every_s:g} s: write / interval = {write / every_s:.4f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=3, help="checkpoints written (default 3)")
    ap.add_argument("--dir", type=Path, default=None, help="folder on the disk to measure (default: a temp)")
    ap.add_argument("--img-per-s", type=float, default=ISSUE_IMG_PER_S, help="training speed for the epoch")
    ap.add_argument("--epoch-s", type=float, default=None, help="an epoch time measured elsewhere (s)")
    args = ap.parse_args(argv)
    parts, labels, config = paper_parts()
    with tempfile.TemporaryDirectory(prefix="spherereid-ckpt-", dir=args.dir) as tmp:
        times = write_times(parts, Path(tmp), args.writes)
        size = (Path(tmp) / "last.pt").stat().st_size
    images, epoch = epoch_seconds(labels, config, args.img_per_s)
    source = f"{images} images at {args.img_per_s:.0f} img/s"
    if args.epoch_s is not None:
        epoch, source = args.epoch_s, f"--epoch-s {args.epoch_s}"
    _, every_s = checkpoint_cadence(load_params(ROOT / "params-paper.yaml").train.checkpoint_every)
    report(size, times, epoch, source, every_s, args.dir or Path(tempfile.gettempdir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
