"""`spherereid` console script: one entry point for the stages and tools.

spherereid synthesize|preprocess|train|evaluate|register ...  (same as python -m spherereid.stages.X)
spherereid evaluate-features FEATURES.npz ...    (same as python -m spherereid.evaluate_features)
spherereid summary [--params params.yaml] [--outputs outputs]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

COMMANDS = {
    "synthesize": "spherereid.stages.synthesize",
    "preprocess": "spherereid.stages.preprocess",
    "train": "spherereid.stages.train",
    "evaluate": "spherereid.stages.evaluate",
    "register": "spherereid.stages.register",
    "evaluate-features": "spherereid.evaluate_features",
}


def _summary(argv: Sequence[str]) -> int:
    from .config import ConfigError, load_params
    from .summary import summarize

    parser = argparse.ArgumentParser(prog="spherereid summary")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--outputs", type=Path, default=Path("outputs"))
    args = parser.parse_args(argv)
    try:
        datasets = list(load_params(args.params).datasets)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summarize(args.outputs, datasets))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = [*COMMANDS, "summary"]
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
        print(__doc__, file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    command, rest = argv[0], argv[1:]
    if command == "summary":
        return _summary(rest)
    return int(importlib.import_module(COMMANDS[command]).main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
