"""Extraction speed against bare inference, and the mAP of bf16 extraction against fp32.

    python benchmarks/extract_speed.py [--images 20000] [--epochs 12] [--quick] [--json PATH]

(a) Speed: `extract_features` (the evaluate stage's path: uint8 memmap on disk -> pinned gather -> resize
    + normalise on the device -> network + mirror image -> L2) in precision auto (bf16 on CUDA of
    capability >= 8.0 and on native-bf16 CPUs), channels_last, batch 512 on CUDA / 128 on the CPU, against
    bare inference of the same network on a resident, already normalised batch (same precision, layout,
    batch, flip). Prints
    images/s and the ratio (goal >= 0.90).
(b) Accuracy: a network trained for a few epochs on the synthetic set (params.yaml's quickstart network)
    extracts query and gallery features in fp32 and in bf16; prints both mAPs and the difference (goal:
    within 0.1 point), on the CPU as on CUDA. --json also writes the figures to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

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
from spherereid.data.synthetic_arrays import synthetic_splits  # noqa: E402
from spherereid.data.transforms import EvalTransform  # noqa: E402
from spherereid.device import effective_precision, memory_format  # noqa: E402
from spherereid.evaluation.metrics import evaluate_features  # noqa: E402
from spherereid.inference import extract_features  # noqa: E402
from spherereid.modeling.net import ReIDNet  # noqa: E402
from spherereid.training.trainer import FitConfig, fit  # noqa: E402


def bare_inference(model, device, crop, n: int, batch: int, precision: str) -> float:
    """images/s of the network (+ mirror) on one resident normalised batch, `n` images in all, in the layout
    `extract_features` uses at `precision` (channels_last, except fp32 on the CPU). The layout
    conversion happens outside inference mode (as `extract_features` does), so the parameters stay
    ordinary tensors that later legs can use and train."""
    model.eval()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # before every leg
    fmt = memory_format(device, precision)
    model.to(memory_format=fmt)
    x = torch.randn(batch, 3, *crop, device=device).contiguous(memory_format=fmt)
    dtype = torch.bfloat16 if precision == "bf16" else None
    rounds = max(1, n // batch)

    @torch.inference_mode()
    def run(k):
        for _ in range(k):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                emb = model(x).float() + model(x.flip(-1)).float()
            torch.nn.functional.normalize(emb, dim=1)

    run(2)
    sync(device)
    start = time.perf_counter()
    run(rounds)
    sync(device)
    return rounds * batch / (time.perf_counter() - start)


def extraction(model, device, images, crop, batch: int, precision: str) -> float:
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # before every leg
    tf = EvalTransform(size=crop)
    extract_features(
        model, images[: batch * 2], tf, batch_size=batch, device=device, precision=precision, progress=False
    )
    sync(device)
    start = time.perf_counter()
    extract_features(model, images, tf, batch_size=batch, device=device, precision=precision, progress=False)
    sync(device)
    return len(images) / (time.perf_counter() - start)


def map_difference(device, epochs: int) -> dict[str, float]:
    """Train the quickstart network on the synthetic set, then mAP with fp32 and bf16 extraction."""
    splits = synthetic_splits()
    train = splits["train"]
    with temp_dir() as tmp:
        res = fit(
            images=train.images,
            labels=train.pids,
            num_classes=int(train.pids.max()) + 1,
            checkpoint_path=Path(tmp) / "last.pt",
            config=FitConfig(
                model=ModelConfig(**QUICK.model),
                loss=LossConfig(type="sphere", scale=14.0, margin=0.0),
                sampler=SamplerConfig(p=16, k=4, batch_size=64),
                optim=OptimConfig(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.999)),
                schedule=ScheduleConfig(
                    warmup_start_lr=5e-5, warmup_epochs=2, milestones=(), gamma=0.1, step_per="epoch"
                ),
                train=TrainConfig(
                    epochs=epochs, device=str(device), precision="bf16", cuda_graphs=device.type == "cuda"
                ),
                transform=TransformConfig(resize_height=144, resize_width=72, crop_height=128, crop_width=64),
            ),
            progress=False,
        )
    out = {}
    for precision in ("fp32", "bf16"):  # bf16 extraction on the CPU too (native bf16 or not: measured)
        batch = 512 if precision == "bf16" else 128
        q, g = (
            extract_features(
                res.model,
                splits[s].images,
                EvalTransform(size=(128, 64)),
                device=device,
                batch_size=batch,
                precision=precision,
                progress=False,
            )
            for s in ("query", "gallery")
        )
        r = evaluate_features(
            q,
            g,
            splits["query"].pids,
            splits["gallery"].pids,
            splits["query"].camids,
            splits["gallery"].camids,
        ).to_dict()
        out[precision] = r["mAP"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=None, help="images extracted (default 20000 CUDA, 512 CPU)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs for (b) (default 12 CUDA, 2 CPU)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="the small ResNet-18 network for (a) even on CUDA"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    recipe = QUICK if args.quick else default_recipe(device)
    n = args.images or (20000 if cuda else 512)
    precision, batch = effective_precision("auto", device), (512 if cuda else 128)
    print(f"device: {describe(device)}")
    print(f"(a) {recipe.name}: {n} images stored {recipe.stored}, input {recipe.crop}")
    print(f"    {precision}, batch {batch}")
    torch.manual_seed(0)
    model = ReIDNet(**recipe.model).to(device)
    bare = bare_inference(model, device, recipe.crop, n, batch, precision)
    with temp_dir() as tmp:
        images = random_memmap(Path(tmp), n, recipe.stored)
        ours = extraction(model, device, images, recipe.crop, batch, precision)
    print(f"bare inference (+flip)       : {bare:9.1f} images/s")
    print(f"extract_features (+flip)     : {ours:9.1f} images/s")
    print(f"ratio extraction / bare      : {ours / bare:9.3f}  (goal >= 0.90)")
    maps = map_difference(device, args.epochs or (12 if cuda else 2))
    line = ", ".join(f"{k} {v:.4%}" for k, v in maps.items())
    print(f"(b) synthetic set mAP: {line}")
    diff = (maps["bf16"] - maps["fp32"]) * 100
    print(f"mAP bf16 - fp32: {diff:+.3f} points  (goal: within 0.1 point)")
    if args.json is not None:
        figures = {
            "device": describe(device),
            "case": recipe.name,
            "images": n,
            "precision": precision,
            "batch": batch,
            "bare_images_per_s": bare,
            "extract_images_per_s": ours,
            "ratio_extract_to_bare": ours / bare,
            "mAP": maps,
            "mAP_bf16_minus_fp32_points": diff,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
