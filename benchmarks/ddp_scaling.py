"""DDP scaling: training images/s with 1, 2 and 4 processes (torchrun, NCCL on GPUs, gloo on the CPU).

    python benchmarks/ddp_scaling.py [--params params.yaml] [--procs 1 2 4] [--steps 20] [--backbone tiny]

Each run is `torchrun --standalone --nproc-per-node N` of this file in worker mode: the params' network
and Sphere Softmax, wrapped in DistributedDataParallel, train on pre-made random batches (the step alone:
forward, backward with the gradient all-reduce, Adam). The global batch stays the params' P x K, so each
rank computes P x K / N images per step (strong scaling, as training does). Prints images/s per process
count and the scaling efficiency images/s(N) / (N x images/s(1)). Process counts above the GPUs (or, on
the CPU, the cores) are skipped: on a 2-core machine this is a correctness run, not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def worker(args: argparse.Namespace) -> None:
    from spherereid.config import load_params
    from spherereid.modeling.losses import build_loss
    from spherereid.modeling.net import ReIDNet
    from spherereid.training import distributed

    p = load_params(args.params)
    with distributed.process_group("auto") as ctx:
        torch.manual_seed(0)
        model_kwargs = {**dataclasses.asdict(p.model), "pretrained": "none"}
        if args.backbone:
            model_kwargs["backbone"] = args.backbone
        net = ReIDNet(**model_kwargs).to(ctx.device)
        loss = build_loss(
            p.loss.type,
            embedding_dim=net.embedding_dim,
            num_classes=751,
            scale=p.loss.scale,
            margin=p.loss.margin,
        ).to(ctx.device)
        model, criterion = distributed.wrap(net, ctx), distributed.wrap(loss, ctx)
        optimizer = torch.optim.Adam(list(model.parameters()) + list(criterion.parameters()), lr=1e-4)
        per_rank = p.sampler.batch_size // ctx.world_size
        h, w = p.transform.crop_height, p.transform.crop_width
        x = torch.randn(per_rank, 3, h, w, device=ctx.device)
        y = torch.randint(0, 751, (per_rank,), device=ctx.device)

        def step() -> None:
            value, _ = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()

        for _ in range(args.warmup):
            step()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        distributed.barrier(ctx)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        distributed.barrier(ctx)
        seconds = time.perf_counter() - start
        if ctx.is_main:
            figures = {
                "processes": ctx.world_size,
                "device": str(ctx.device),
                "per_rank_batch": per_rank,
                "images_per_second": args.steps * per_rank * ctx.world_size / seconds,
            }
            Path(args.worker).write_text(json.dumps(figures))


def capacity() -> tuple[int, str]:
    """(most processes worth running, what bounds it)."""
    if torch.cuda.is_available():
        return (
            torch.cuda.device_count(),
            f"{torch.cuda.device_count()} GPUs ({torch.cuda.get_device_name(0)})",
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores, f"{cores} CPU cores (gloo)"


def run(nproc: int, args: argparse.Namespace, out: Path) -> dict:
    extra = ["--backbone", args.backbone] if args.backbone else []
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        __file__,
        "--worker",
        str(out),
        "--params",
        str(args.params),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4], help="process counts to run")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--backbone", default="", help="override model.backbone (e.g. tiny, resnet50)")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    limit, what = capacity()
    print(f"devices: {what}; global batch from {args.params}; {args.steps} timed steps per run")
    results: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.procs:
            if n > limit:
                print(f"{n} processes: skipped (only {what})")
                continue
            results[n] = run(n, args, Path(tmp) / f"{n}.json")
    base = results.get(1, {}).get("images_per_second")
    header = ("processes", "device", "batch/rank", "images/s", "speed-up", "efficiency")
    print("{:>9} {:>8} {:>10} {:>10} {:>8} {:>10}".format(*header))
    for n, r in results.items():
        ips = r["images_per_second"]
        speedup = f"{ips / base:.2f}" if base else "-"
        efficiency = f"{ips / (n * base):.0%}" if base else "-"
        print(f"{n:>9} {r['device']:>8} {r['per_rank_batch']:>10} {ips:>10.1f} {speedup:>8} {efficiency:>10}")


if __name__ == "__main__":
    main()
