"""int8 ONNX against fp32 ONNX: images/s of each and the ratio, plus the parity figures, on this CPU.

    python benchmarks/onnx_int8.py [--model outputs/synthetic/train/model.pt] [--params params.yaml]
        [--prepared data/prepared/synthetic] [--batch 64 ...] [--repeats 9] [--threads 0] [--naive]

The model (default: the main job's model.pt; `models:/...` works too) is exported to fp32 ONNX and
quantized with the recipe of `spherereid export --quantize int8` (deploy/quantize.py), calibrated on the
prepared train split. Speed: both models on the same batch of query images, in the same process, timed
in turns (fp32, int8, fp32, ...), `--repeats` times per batch size; images/s are medians, the ratio is the
median of the per-turn ratios (robust on a machine shared with other work). Parity: rank-1 / mAP of both
on the prepared query + gallery, their difference in points, top-1 agreement and row cosines.
`--naive` also measures a plain quantize_static (QDQ, per-channel, int8 activations, the whole graph,
no pre-processing) for comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _naive_int8(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """quantize_static with the library's defaults but QDQ and per-channel: the first attempt's recipe."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from spherereid.deploy.quantize import calibration_reader

    quantize_static(
        str(fp32), str(out), calibration_reader(calibration), quant_format=QuantFormat.QDQ, per_channel=True
    )
    return out


def _print_speed(name: str, fp32: Path, int8: Path, images: np.ndarray, args: argparse.Namespace) -> None:
    from spherereid.deploy.speed import compare_speed

    for batch in args.batch:
        s = compare_speed(fp32, int8, images[:batch], repeats=args.repeats, threads=args.threads)
        print(
            f"{name:7s} batch {s.batch:3d}: fp32 {s.fp32_images_per_s:8.1f} images/s, int8 "
            f"{s.int8_images_per_s:8.1f} images/s, ratio {s.speedup:.2f}x (median of {s.repeats})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="outputs/synthetic/train/model.pt", help="model.pt or models:/...")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (the chain)")
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared/synthetic"), help="prepared set")
    parser.add_argument("--batch", type=int, nargs="+", default=[64], help="batch sizes timed (default 64)")
    parser.add_argument("--repeats", type=int, default=9, help="timed turns per batch size (default 9)")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: its default)")
    parser.add_argument("--naive", action="store_true", help="also time a naive quantize_static")
    args = parser.parse_args(argv)

    from spherereid.data.manifest import PreparedSet
    from spherereid.deploy.int8_parity import check_int8_parity
    from spherereid.deploy.model_source import resolve_model
    from spherereid.deploy.onnx_export import OnnxEmbedder, export_onnx
    from spherereid.deploy.quantize import calibration_images, quantize_int8
    from spherereid.deploy.speed import cpu_description

    model = resolve_model(args.model, params=args.params)
    prepared = PreparedSet(args.prepared)
    query, gallery = prepared.split("query"), prepared.split("gallery")
    images = np.concatenate([np.asarray(query.images), np.asarray(gallery.images)])
    calibration = calibration_images(prepared.split("train"))
    with tempfile.TemporaryDirectory(prefix="spherereid-int8-bench-") as tmp:
        fp32 = export_onnx(model.net, model.chain, Path(tmp) / "fp32.onnx")
        start = time.perf_counter()
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", calibration)
        quantize_s = time.perf_counter() - start
        rows = OnnxEmbedder(fp32)(images)
        print(f"{model.label}: {model.net.constructor_args}, chain {model.chain.to_dict()}")
        print(f"{cpu_description()}; {len(calibration)} calibration images, quantized in {quantize_s:.1f} s")
        variants = {"recipe": int8}
        if args.naive:
            variants["naive"] = _naive_int8(fp32, Path(tmp) / "naive.onnx", calibration)
        for name, path in variants.items():
            p = check_int8_parity(
                int8_path=path, fp32_rows=rows, query=query, gallery=gallery, budget_points=float("inf")
            )
            print(
                f"{name:7s} parity on {p.rows} images: {p.summary()}, row cosine mean {p.mean_cosine:.5f} "
                f"worst {p.min_cosine:.5f}"
            )
            _print_speed(name, fp32, path, np.asarray(query.images), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
