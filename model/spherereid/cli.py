"""`spherereid`: the front door to the stages and tools.

Every command is a `main(argv, prog)` function named "module:function"; `spherereid <command> --help`
documents its options.
The table below is the only list of commands: `spherereid --help` prints it without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

# command -> ("module:function" taking (argv, prog), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synthesize": (
        "spherereid.stages.synthesize:main",
        "write the embedded synthetic dataset (Market-1501 layout)",
    ),
    "preprocess": ("spherereid.stages.preprocess:main", "parse, validate and resize a raw dataset once"),
    "train": ("spherereid.stages.train:main", "train a SphereReID model (checkpoints, exact resume, MLflow)"),
    "evaluate": ("spherereid.stages.evaluate:main", "extract features; CMC, mAP, mINP and plots"),
    "register": (
        "spherereid.stages.register:main",
        "register the evaluated model in MLflow through the gate",
    ),
    "evaluate-features": (
        "spherereid.evaluation.features_cli:main",
        "metrics of saved features (.npz with qf, gf, pids, camids)",
    ),
    "summary": ("spherereid.cli:summary", "metrics and registered versions of the last main job"),
    "export": (
        "spherereid.deploy.commands:export",
        "export a model to ONNX (uint8 images in, unit embeddings out) with proven parity",
    ),
    "search": (
        "spherereid.deploy.commands:search",
        "rank a folder of gallery images for query images (results.json + ranked-list PNG)",
    ),
    "ablation": (
        "spherereid.experiments.ablation_cli:main",
        "the paper's ablation grid (heads x loss x warm-up, + random sampling): train -> evaluate per cell",
    ),
    "promote": (
        "spherereid.tracking.registry:promote_main",
        "make a registered version the champion by hand (records who, when, why)",
    ),
    "tracking": (
        "spherereid.tracking.spool:main",
        "tracking tools: `tracking replay DIR` sends a training's spooled metrics to MLflow",
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage first)
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _top_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spherereid",
        description="SphereReID person re-identification: stages and tools.",
        epilog="`spherereid <command> --help` documents each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"spherereid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    for name, (_, help_line) in COMMANDS.items():
        sub.add_parser(name, help=help_line, add_help=False)
    return parser


def summary(argv: Sequence[str], prog: str = "spherereid summary") -> int:
    """Rank-1/mAP per dataset, the registered version and its aliases, and how to open the MLflow UI."""
    from .config import load_params
    from .entrypoint import run_cli
    from .redaction import redact_uri
    from .reporting.summary import summarize
    from .tracking.client import tracking_uri

    parser = argparse.ArgumentParser(prog=prog, description=summary.__doc__)
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file whose `datasets` are summarised (default params.yaml)",
    )
    parser.add_argument(
        "--outputs", type=Path, default=Path("outputs"), help="the stages' output root (default outputs)"
    )
    args = parser.parse_args(argv)

    def body() -> int:
        print(summarize(args.outputs, list(load_params(args.params).datasets), redact_uri(tracking_uri())))
        return 0

    return run_cli(body)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _top_parser()
    if not argv:
        parser.print_help(sys.stderr)
        return 2
    if argv[0].startswith("-"):
        parser.parse_args(argv[:1])  # --help / --version exit here; anything else is an error
        return 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    module, function = COMMANDS[command][0].split(":")
    return int(getattr(importlib.import_module(module), function)(rest, prog=f"spherereid {command}") or 0)


if __name__ == "__main__":
    raise SystemExit(main())
