"""ONNX Runtime against PyTorch: embedding images/s of the whole chain on this CPU.

    python benchmarks/onnx_speed.py [--params params.yaml] [--backbone resnet18] [--batch 64] [--images 256]
        [--threads 0]

Both sides run the same work: uint8 (N, stored_h, stored_w, 3) images -> antialiased resize to the input
size -> normalise -> network (+ the mirror image when evaluate.flip) -> L2. PyTorch runs
`inference.extract_features` (the evaluate stage's path); onnxruntime runs the graph `spherereid export`
writes (CPU provider). An untrained network of the params' architecture, random images, one warm-up
pass each. Prints images/s, the ratio, and the worst row cosine between the two.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    parser.add_argument("--backbone", default="", help="override model.backbone (e.g. tiny, resnet50)")
    parser.add_argument("--batch", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--images", type=int, default=256, help="images embedded per timing (default 256)")
    parser.add_argument("--threads", type=int, default=0, help="threads for both sides (0: library default)")
    args = parser.parse_args(argv)

    from spherereid.config import load_params
    from spherereid.deploy.model_source import chain_from_params
    from spherereid.deploy.onnx_export import OnnxEmbedder, export_onnx
    from spherereid.deploy.parity import row_cosines
    from spherereid.inference import extract_features
    from spherereid.modeling.net import ReIDNet

    p = load_params(args.params)
    if args.threads:
        torch.set_num_threads(args.threads)
    chain = chain_from_params(p)
    kwargs = {**dataclasses.asdict(p.model), "pretrained": "none"}
    if args.backbone:
        kwargs["backbone"] = args.backbone
    torch.manual_seed(0)
    net = ReIDNet(**kwargs).eval()
    images = np.random.default_rng(0).integers(0, 256, (args.images, *chain.stored_size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_onnx(net, chain, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - start
        session = OnnxEmbedder(path, threads=args.threads)

        def torch_run() -> np.ndarray:
            tf = chain.eval_transform()
            return extract_features(net, images, tf, batch_size=args.batch, flip=chain.flip, progress=False)

        def onnx_run() -> np.ndarray:
            return session(images, batch_size=args.batch)

        rates, outputs = {}, {}
        for name, fn in (("pytorch", torch_run), ("onnxruntime", onnx_run)):
            fn()  # warm-up
            start = time.perf_counter()
            outputs[name] = fn()
            rates[name] = args.images / (time.perf_counter() - start)
    cos = row_cosines(outputs["onnxruntime"], outputs["pytorch"])
    h, w = chain.stored_size
    print(
        f"backbone {kwargs['backbone']}, head {kwargs['head']}, stored {h}x{w} -> input "
        f"{chain.input_size[0]}x{chain.input_size[1]}, flip {chain.flip}, batch {args.batch}, "
        f"{args.images} images, torch threads {torch.get_num_threads()}"
    )
    print(f"export: {export_s:.1f} s")
    for name, rate in rates.items():
        print(f"{name:12s} {rate:8.1f} images/s")
    print(f"ratio onnxruntime / pytorch: {rates['onnxruntime'] / rates['pytorch']:.2f}x")
    print(f"worst row cosine: {cos.min():.7f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
