"""`spherereid export` and `spherereid search`: argument parsing and one-line errors around the library."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..entrypoint import run_cli

if TYPE_CHECKING:
    from .model_source import ResolvedModel

log = logging.getLogger(__name__)

MODEL_HELP = (
    "models:/NAME@ALIAS, models:/NAME/VERSION, a version number (with --name), or a train-stage model.pt"
)


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--name", help="registered model name, when --model is a version number")
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file giving the image chain of a model.pt, or of a registered model without one "
        "(default params.yaml)",
    )


def export(argv: Sequence[str] | None = None, prog: str = "spherereid export") -> int:
    """Export a model to ONNX (uint8 images in, unit embeddings out) and check it against PyTorch."""
    from ..config import INT8_BUDGET_POINTS

    parser = argparse.ArgumentParser(prog=prog, description=export.__doc__)
    _model_options(parser)
    parser.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    parser.add_argument("--out", type=Path, required=True, help="output file, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, >= 18 (default 18)")
    parser.add_argument(
        "--prepared",
        type=Path,
        help="prepared dataset directory: prove parity on its query and gallery (cosine, batch sizes, "
        "rank-1/mAP); without it, cosine and batch sizes are checked on 64 random images",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="int8: write a statically quantized model for CPUs (calibrated on --prepared's train split, "
        "held to --int8-budget against fp32 ONNX on its query/gallery, timed against fp32 ONNX)",
    )
    parser.add_argument(
        "--int8-budget",
        type=float,
        default=INT8_BUDGET_POINTS,
        metavar="POINTS",
        help=f"most rank-1 or mAP points int8 may differ from fp32 (default {INT8_BUDGET_POINTS})",
    )
    args = parser.parse_args(argv)

    def body() -> int:
        from .model_source import resolve_model

        model = resolve_model(args.model, name=args.name, params=args.params)
        if args.quantize == "int8":
            figures = _export_int8(model, args)
        else:
            figures = _export_fp32(model, args)
        print(f"exported {model.label} to {args.out}" + (" (int8)" if args.quantize else ""))
        print(
            f"  input: uint8 (N, {model.chain.stored_size[0]}, {model.chain.stored_size[1]}, 3) RGB; "
            "output: float32 (N, D) unit embeddings"
        )
        for name, values in figures.items():
            print(f"  {name}: {json.dumps(values)}")
        return 0

    return run_cli(body)


def _export_fp32(model: ResolvedModel, args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The fp32 ONNX file at args.out and its parity with PyTorch ({"parity": figures})."""
    from ..data.manifest import PreparedSet
    from .onnx_export import export_onnx
    from .parity import check_parity, check_rows

    path = export_onnx(model.net, model.chain, args.out, opset=args.opset)
    if args.prepared is not None:
        prepared = PreparedSet(args.prepared)
        report = check_parity(
            net=model.net,
            chain=model.chain,
            onnx_path=path,
            query=prepared.split("query"),
            gallery=prepared.split("gallery"),
        )
        return {"parity": report.tags(prefix="")}
    images = np.random.default_rng(0).integers(0, 256, (64, *model.chain.stored_size, 3), np.uint8)
    rows = check_rows(net=model.net, chain=model.chain, onnx_path=path, images=images)
    return {
        "parity": {
            "rows": "64 random images",
            "min_cosine": str(rows.min_cosine),
            "max_batch_difference": str(rows.max_batch_difference),
        }
    }


def _export_int8(model: ResolvedModel, args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The int8 ONNX file at args.out: fp32 export and its parity with PyTorch first (in a temporary
    folder), then calibration, the int8 budget and the timing ({"parity": fp32's, "int8": int8's})."""
    from ..data.manifest import PreparedSet
    from .int8_export import export_int8
    from .onnx_export import export_onnx
    from .parity import check_parity_rows
    from .quantize import QuantizeError

    if args.prepared is None:
        raise QuantizeError(
            "--quantize int8 needs --prepared DIR: calibration uses its train split and the parity budget "
            "its query and gallery"
        )
    prepared = PreparedSet(args.prepared)
    with tempfile.TemporaryDirectory(prefix="spherereid-fp32-") as tmp:
        fp32 = export_onnx(model.net, model.chain, Path(tmp) / "model.fp32.onnx", opset=args.opset)
        report, rows = check_parity_rows(
            net=model.net,
            chain=model.chain,
            onnx_path=fp32,
            query=prepared.split("query"),
            gallery=prepared.split("gallery"),
        )
        int8 = export_int8(
            fp32,
            args.out,
            prepared=prepared,
            fp32_rows=rows,
            budget_points=args.int8_budget,
            budget_fix=" (drop --quantize) or raise --int8-budget",
        )
    return {"parity": report.tags(prefix=""), "int8": int8.figures()}


def search(argv: Sequence[str] | None = None, prog: str = "spherereid search") -> int:
    """Rank a folder of gallery images for each query image; write results.json and a ranked-list PNG."""
    parser = argparse.ArgumentParser(prog=prog, description=search.__doc__)
    _model_options(parser)
    parser.add_argument("--gallery", type=Path, required=True, help="folder of gallery images (JPEG/PNG)")
    parser.add_argument("--query", type=Path, nargs="+", required=True, help="one or more query images")
    parser.add_argument("--top", type=int, default=10, help="gallery images per query (default 10)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per query)")
    parser.add_argument(
        "--index",
        type=Path,
        help="gallery index file (default <out>/gallery_index.npz); reused while "
        "the model and the gallery files are unchanged",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.top < 1:
        parser.error("--batch-size and --top must be >= 1")

    def body() -> int:
        from .gallery_index import build_index
        from .model_source import resolve_model
        from .search import search as run_search

        model = resolve_model(args.model, name=args.name, params=args.params)
        index_path = args.index or args.out / "gallery_index.npz"
        index = build_index(args.gallery, model, index_path, batch_size=args.batch_size)
        print(index.summary())  # each skipped file and its reason is logged (stderr) as a warning
        results, _ = run_search(model, index, args.query, top=args.top, out_dir=args.out)
        for res in results:
            best = res.matches[0]
            print(f"{res.query}: top-1 {best.path} (distance {best.distance:.4f}); {res.results_path.parent}")
        return 0

    return run_cli(body)
