"""Training speed on one device: fit() against the bare step, and the projected paper schedule.

    python benchmarks/gpu_train.py [--epochs 6] [--steps 40] [--precision bf16] [--quick] [--json PATH]

Prints (and with --json writes) images/s of
  (a) the bare step: the same model, Sphere Softmax loss, fused Adam and P x K batch on a resident tensor,
      eager in plain fp32, eager in `--precision` with channels_last (CPU too), and (CUDA) replayed from a
      CUDA graph; cudnn.benchmark is set before every leg;
  (b) the project's fit(): the real data path (memmap on disk, P x K sampler, pinned gather, crop/flip on
      the device) with a checkpoint written every epoch, per steady epoch (first epoch excluded: it
      captures the graph and tunes cuDNN), wall clock between epochs (checkpoint included);
then the ratio fit / bare step (graph on CUDA; measured before and after fit(), their mean; goal >= 0.90)
and the projected wall time of the paper schedule (140 epochs at Market-1501 size, goal <= 2 minutes on an
H100/H200).
On CUDA the default case is the paper recipe at Market size; on the CPU (or with --quick) a small
ResNet-18 case, eager only. --precision auto resolves as train.precision does (bf16 on CUDA devices of
compute capability >= 8.0 and on CPUs with native bf16, else fp32).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import QUICK, default_recipe, describe, random_memmap, sync, temp_dir  # noqa: E402

from spherereid.config import (  # noqa: E402
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
)
from spherereid.device import effective_precision  # noqa: E402
from spherereid.modeling.losses import build_loss  # noqa: E402
from spherereid.modeling.net import ReIDNet  # noqa: E402
from spherereid.training.optim import build_optimizer  # noqa: E402
from spherereid.training.step import EpochAccumulator, TrainStep  # noqa: E402
from spherereid.training.trainer import FitConfig, fit  # noqa: E402

PAPER_EPOCHS = 140
LOSS = dict(type="sphere", scale=14.0, margin=0.0)
OPTIM = dict(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.99), eps=1e-8)  # params.yaml's Adam


def bare_step(recipe, device, precision: str, graphs: bool, steps: int, warmup: int = 5) -> float:
    """images/s of TrainStep on one resident batch (no data path, no checkpoints). 'fp32-plain': fp32 in
    the contiguous layout; any other precision runs in channels_last."""
    torch.manual_seed(0)
    set_benchmark(device)
    fmt = torch.contiguous_format if precision == "fp32-plain" else torch.channels_last
    prec = "fp32" if precision == "fp32-plain" else precision
    model = ReIDNet(**recipe.model).to(device, memory_format=fmt)
    crit = build_loss(embedding_dim=model.embedding_dim, num_classes=recipe.ids, **LOSS).to(device)
    crit.check_labels = False
    opt = build_optimizer(
        list(model.parameters()) + list(crit.parameters()),
        device=device,
        capturable=graphs,
        **{**OPTIM, "betas": tuple(OPTIM["betas"])},
    )
    step = TrainStep(
        model=model,
        criterion=crit,
        optimizer=opt,
        stats=EpochAccumulator(device),
        precision=prec,
        cuda_graphs=graphs,
    )
    b = recipe.p * recipe.k
    x = torch.randn(b, 3, *recipe.crop, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, recipe.ids, (b,), device=device)
    model.train()
    for _ in range(warmup):
        step(x, y)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    step.stats.read()
    sync(device)
    return steps * b / (time.perf_counter() - start)


def fit_speed(recipe, device, precision: str, graphs: bool, epochs: int) -> dict:
    """fit() on a random memmap with a checkpoint every epoch: per-epoch figures."""
    set_benchmark(device)
    labels = np.arange(recipe.images) % recipe.ids
    stamps: list[float] = []
    with temp_dir() as tmp:
        images = random_memmap(Path(tmp), recipe.images, recipe.stored)
        start = time.perf_counter()
        res = fit(
            images=images,
            labels=labels,
            num_classes=recipe.ids,
            checkpoint_path=Path(tmp) / "ckpt" / "last.pt",
            config=FitConfig(
                model=ModelConfig(**recipe.model),
                loss=LossConfig(**LOSS),
                sampler=SamplerConfig(p=recipe.p, k=recipe.k, batch_size=recipe.p * recipe.k),
                optim=OptimConfig(**OPTIM),
                schedule=ScheduleConfig(
                    warmup_start_lr=5e-5, warmup_epochs=2, milestones=(), gamma=0.1, step_per="epoch"
                ),
                train=TrainConfig(epochs=epochs, device=str(device), precision=precision, cuda_graphs=graphs),
                transform=TransformConfig(
                    resize_height=recipe.stored[0],
                    resize_width=recipe.stored[1],
                    crop_height=recipe.crop[0],
                    crop_width=recipe.crop[1],
                    flip_prob=0.5,
                ),
            ),
            on_epoch=lambda stats: stamps.append(time.perf_counter()),
            progress=False,
        )
        total = time.perf_counter() - start
        ckpt_mb = (Path(tmp) / "ckpt" / "last.pt").stat().st_size / 2**20
    per_epoch = res.history[0].images
    walls = np.diff([start, *stamps])
    steady = walls[1:] if len(walls) > 1 else walls
    return {
        "images_per_epoch": per_epoch,
        "in_epoch": float(np.mean([h.images_per_second for h in res.history[1:] or res.history])),
        "wall": per_epoch / float(np.mean(steady)),
        "first_epoch_s": float(walls[0]),
        "steady_epoch_s": float(np.mean(steady)),
        "total_s": total,
        "checkpoint_mb": ckpt_mb,
    }


def set_benchmark(device: torch.device) -> None:
    """cudnn.benchmark before every leg (static shapes: the fastest kernels), whatever a leg before did."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="fit() epochs (default 6 on CUDA, 2 on CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed bare steps (default 60 CUDA, 4 CPU)")
    parser.add_argument("--precision", default="auto", help="auto | fp32 | bf16 | fp16 (fp16: CUDA only)")
    parser.add_argument("--quick", action="store_true", help="the small ResNet-18 case even on CUDA")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    recipe = QUICK if args.quick else default_recipe(device)
    epochs = args.epochs or (6 if cuda else 2)
    steps = args.steps or (60 if cuda else 4)
    precision = effective_precision(args.precision, device)
    graphs = cuda and precision != "fp16"
    print(f"device: {describe(device)}")
    print(
        f"case  : {recipe.name}: batch {recipe.p}x{recipe.k}, stored {recipe.stored}, input {recipe.crop}, "
        f"{recipe.images} images of {recipe.ids} ids"
    )
    figures = run_legs(recipe, device, precision, graphs, steps, epochs)
    figures.update(device=describe(device), case=recipe.name, precision=precision, graphs=graphs)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")


def fit_ratios(
    recipe, device, precision: str, graphs: bool, before: float, f: dict, steps: int
) -> tuple[float, float, float]:
    """fit() / the bare step it is compared with (the graph step on CUDA, else eager), measured again after
    fit(): the mean of the two brackets fit(), so a load that drifts during the run cancels to first order.
    Returns (wall ratio, in-epoch ratio, the second bare figure)."""
    kind = "graph" if graphs else "eager"
    after = bare_step(recipe, device, precision, graphs, steps)
    bare = (before + after) / 2
    print(f"bare {kind} step again after fit(): {after:9.1f} images/s (compared with the mean, {bare:.1f})")
    ratio, in_epoch = f["wall"] / bare, f["in_epoch"] / bare  # in-epoch: no checkpoints, no epoch boundaries
    print(f"ratio fit wall / bare {kind} step: {ratio:6.3f}  (goal >= 0.90)")
    print(f"ratio fit in-epoch / bare {kind} step: {in_epoch:6.3f}  (data path and per-step overhead only)")
    return ratio, in_epoch, after


def run_legs(recipe, device, precision: str, graphs: bool, steps: int, epochs: int) -> dict:
    """Every leg, printed as it finishes; returns the figures (images/s, ratios, seconds)."""
    fp32 = bare_step(recipe, device, "fp32-plain", False, steps)
    print(f"bare step, fp32 eager                    : {fp32:9.1f} images/s")
    fast = bare_step(recipe, device, precision, False, steps)
    print(f"bare step, {precision} eager + channels_last   : {fast:9.1f} images/s")
    graph = bare_step(recipe, device, precision, True, steps) if graphs else None
    if graph is not None:
        print(f"bare step, {precision} + channels_last, CUDA graph: {graph:9.1f} images/s")
    f = fit_speed(recipe, device, precision, graphs, epochs)
    mode = f"{precision}{', graphs' if graphs else ''}"
    print(f"fit(), {mode}, checkpoint every epoch ({f['checkpoint_mb']:.0f} MB):")
    print(f"  in-epoch        : {f['in_epoch']:9.1f} images/s")
    print(
        f"  wall per epoch  : {f['wall']:9.1f} images/s ({f['steady_epoch_s']:.3f} s per steady epoch, "
        f"first epoch {f['first_epoch_s']:.2f} s)"
    )
    before = graph if graph is not None else fast
    ratio, in_epoch, after = fit_ratios(recipe, device, precision, graph is not None, before, f, steps)
    market_steps = (751 // 16) * 64 / (recipe.p * recipe.k)  # Market-1501 epoch, in this case's steps
    per_step = f["steady_epoch_s"] / (f["images_per_epoch"] / (recipe.p * recipe.k))
    projected = f["first_epoch_s"] + (PAPER_EPOCHS - 1) * market_steps * per_step
    cuda = device.type == "cuda"
    print(
        f"projected paper schedule ({PAPER_EPOCHS} epochs, Market-sized, checkpoints): {projected:7.1f} s "
        f"= {projected / 60:.2f} min{'  (goal <= 2 min on an H100/H200)' if cuda else ''}"
    )
    return {
        "bare_fp32_images_per_s": fp32,
        "bare_fast_eager_images_per_s": fast,
        "bare_graph_images_per_s": graph,
        "fit": f,
        "bare_again_after_fit_images_per_s": after,
        "ratio_fit_to_best_bare": ratio,
        "ratio_fit_in_epoch_to_best_bare": in_epoch,
        "projected_paper_schedule_s": projected,
    }


if __name__ == "__main__":
    main()
