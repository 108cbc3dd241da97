"""`spherereid ablation`: the paper's ablation grid as one command (train -> evaluate per cell).

    spherereid ablation --params params.yaml --out outputs/ablation \\
        [--set train.epochs=5 --set model.backbone=tiny] [--grid head=A,D --grid loss=sphere]

Writes <out>/ablation.json, ablation.md and ablation.png, and one MLflow parent run with a child run per
cell. Run the same command again after a kill: finished cells are reused, a half-done one resumes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..config import load_params
from ..entrypoint import run_cli
from .dvc_queue import queue_commands
from .grid import AXES, default_grid, narrow, parse_filters
from .overrides import apply_overrides, parse_assignments
from .runner import run_ablation


def _parser(prog: str) -> argparse.ArgumentParser:
    """The command line: params, output folder, overrides, grid filters, raw data, DVC queue."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="params file (default params.yaml)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (cells/, ablation.*)")
    axes = "; ".join(f"{axis} {','.join(v)}" for axis, v in AXES.items())
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a parameter in every cell (repeatable), e.g. train.epochs=3",
    )
    parser.add_argument(
        "--grid",
        dest="filters",
        action="append",
        default=[],
        metavar="AXIS=V1,V2",
        help=f"narrow an axis (repeatable); axes: {axes}",
    )
    parser.add_argument(
        "--raw",
        type=Path,
        default=None,
        help="raw dataset folder (default: generated for synthetic, else data/raw/<dataset>)",
    )
    parser.add_argument(
        "--dvc-queue",
        action="store_true",
        help="print one `dvc exp run --queue` command per cell instead of running (pipe into bash)",
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "spherereid ablation") -> int:
    args = _parser(prog).parse_args(argv)

    def body() -> int:
        overrides = parse_assignments(args.overrides)
        params = apply_overrides(load_params(args.params), overrides)
        cells = narrow(default_grid(), parse_filters(args.filters))
        if args.dvc_queue:
            print("\n".join(queue_commands(cells, params, overrides)))
            return 0
        res = run_ablation(
            params=params, out_dir=args.out, cells=cells, raw_dir=args.raw, overrides=overrides
        )
        print(
            f"ablation: {len(res.records)} cells ({len(res.ran)} trained, {len(res.reused)} reused); "
            f"{res.paths['md']}; MLflow parent run {res.parent_run_id}"
        )
        return 0

    return run_cli(body)
