"""Throughput on whatever device: training, extraction and serving, each against its bare counterpart.

    python benchmarks/train_throughput.py [--steps 18] [--epochs 3] [--images 512] [--requests 256 1000]
                                          [--rounds 3] [--precision auto] [--only serving] [--json PATH]

(1) training (benchmarks/gpu_train.py's legs): fit() (memmap on disk, P x K sampler, augmentation,
    checkpoint every epoch) against the bare step on a resident batch in plain fp32 and in `--precision`
    with channels_last; the ratio fit / bare step in the same precision (goal >= 0.90), wall clock
    (checkpoints included) and in-epoch. On the CPU the case is the main job's (1208 images of 150 ids:
    9 steps per epoch), 3 epochs (the first, which allocates, excluded);
(2) extraction: `extract_features` against bare inference (benchmarks/extract_speed.py's legs), in the
    chain's precision;
(3) serving: the pyfunc's `predict` on one request of N JPEG byte strings (decode, resize, network in the
    chain's precision, flip, L2) against the bare flip-averaged forward of the same network on a resident,
    normalised batch at the same precision and batch size (extract_speed.bare_inference), for each N in
    --requests; the two alternate for --rounds rounds and the best of each is kept: the ratio served / bare
    (goal >= 0.85), and images/s against the 2x goal set when serving was first tuned.
Other processes on the machine change the figures: report `uptime`'s load with them.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import QUICK, default_recipe, describe, random_memmap, temp_dir  # noqa: E402
from extract_speed import bare_inference, extraction  # noqa: E402
from gpu_train import run_legs  # noqa: E402

from spherereid.data.image_chain import ImageChain  # noqa: E402
from spherereid.deploy.pyfunc_flavor import PREDICT_BATCH, ReIDEmbeddingModel  # noqa: E402
from spherereid.device import effective_precision  # noqa: E402
from spherereid.modeling.net import ReIDNet  # noqa: E402


def jpegs(n: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
    """`n` random-noise JPEGs (quality 90) of (height, width) `size`: the camera crops a client sends."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def served_model(recipe, device: torch.device, precision: str) -> ReIDEmbeddingModel:
    """The pyfunc as load_context builds it (a freshly seeded network, the chain at `precision`), without
    an MLflow store."""
    torch.manual_seed(0)
    served = ReIDEmbeddingModel()
    served.net = ReIDNet(**recipe.model).to(device).eval()
    served.chain = ImageChain(stored_size=recipe.stored, input_size=recipe.crop, precision=precision)
    served.device, served.embedding_dim = device, served.net.embedding_dim
    return served


def serving(recipe, device: torch.device, precision: str, requests: list[int], rounds: int) -> dict:
    """Per request size N: images/s of ReIDEmbeddingModel.predict on one request of N JPEG bytes (after one
    warm-up) and of the bare flip-averaged forward of the same network on N resident images in batches of
    the pyfunc's, alternating for `rounds` rounds; the best of each and their ratio."""
    import pandas as pd

    served = served_model(recipe, device, precision)
    out = {}
    for n in requests:
        frame = pd.DataFrame({"image": jpegs(n, recipe.stored)})
        served.predict(None, frame.head(min(n, 64)))
        best_served = best_bare = 0.0
        for _ in range(rounds):
            bare = bare_inference(served.net, device, recipe.crop, n, PREDICT_BATCH, precision)
            start = time.perf_counter()
            served.predict(None, frame)
            best_served = max(best_served, n / (time.perf_counter() - start))
            best_bare = max(best_bare, bare)
        out[str(n)] = {"served": best_served, "bare": best_bare, "ratio": best_served / best_bare}
    return out


LEGS = ("training", "extraction", "serving")


def training_leg(recipe, device, precision: str, args) -> dict:
    cuda = device.type == "cuda"
    print("(1) training")
    steps, epochs = args.steps or (60 if cuda else 18), args.epochs or (6 if cuda else 3)
    return run_legs(recipe, device, precision, cuda and precision != "fp16", steps, epochs)


def extraction_leg(recipe, device, precision: str, args) -> dict:
    cuda = device.type == "cuda"
    n, batch = args.images or (20000 if cuda else 512), 512 if cuda else 128
    torch.manual_seed(0)
    model = ReIDNet(**recipe.model).to(device)
    bare = bare_inference(model, device, recipe.crop, n, batch, precision)
    with temp_dir() as tmp:
        ours = extraction(
            model, device, random_memmap(Path(tmp), n, recipe.stored), recipe.crop, batch, precision
        )
    print(
        f"(2) extraction, {precision}: bare {bare:.1f}, extract_features {ours:.1f} images/s, "
        f"ratio {ours / bare:.3f} (goal >= 0.90)"
    )
    return {"bare": bare, "extract_features": ours, "ratio": ours / bare}


def serving_leg(recipe, device, precision: str, args) -> dict:
    served = serving(recipe, device, precision, args.requests, args.rounds)
    for size, figures in served.items():
        before = BEFORE.get(size, BEFORE["1000"])
        print(
            f"(3) serving, {size} JPEGs per request, {precision}: served {figures['served']:.1f} images/s, "
            f"bare flip-averaged forward {figures['bare']:.1f} images/s (best of {args.rounds}): "
            f"ratio served / bare {figures['ratio']:.3f} (goal >= 0.85); "
            f"{figures['served'] / before:.2f}x the {before:.0f} before tuning (goal >= 2x)"
        )
    return served


# images/s of the pyfunc on this project's 2-core CPU before tuning (fp32, one image decoded at a time)
BEFORE = {"256": 115.0, "1000": 58.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="timed bare steps (default 60 CUDA, 18 CPU)")
    parser.add_argument("--epochs", type=int, default=None, help="fit() epochs (default 6 CUDA, 3 CPU)")
    parser.add_argument("--images", type=int, default=None, help="images extracted (default 20000 / 512)")
    parser.add_argument("--requests", type=int, nargs="+", default=[256, 1000], help="JPEGs per request")
    parser.add_argument("--rounds", type=int, default=3, help="serving: alternating served / bare rounds")
    parser.add_argument("--precision", default="auto", help="auto | fp32 | bf16 | fp16 (fp16: CUDA only)")
    parser.add_argument("--only", choices=LEGS, nargs="+", default=list(LEGS), help="run only these legs")
    parser.add_argument("--quick", action="store_true", help="the small ResNet-18 case even on CUDA")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    recipe = QUICK if args.quick else default_recipe(device)
    precision = effective_precision(args.precision, device)
    load = os.getloadavg()[0]
    print(f"device: {describe(device)}, {torch.get_num_threads()} threads, load {load:.2f}, {precision}")
    figures: dict = {"device": describe(device), "load": load, "precision": precision}
    extract_precision = "bf16" if precision == "fp16" else precision  # the chain is fp32 or bf16
    legs = {
        "training": (training_leg, precision),
        "extraction": (extraction_leg, extract_precision),
        "serving": (serving_leg, extract_precision),
    }
    for name in LEGS:
        if name in args.only:
            leg, leg_precision = legs[name]
            figures[name] = leg(recipe, device, leg_precision, args)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
