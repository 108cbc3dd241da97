"""Matrix stage: the cross-evaluate stage's results -> outputs/cross/matrix.json, matrix.md, matrix.png.

    python -m spherereid.experiments.matrix_cli --runs outputs/cross/runs --out outputs/cross

Reads every `<runs>/<train>/<test>.json` ({"train", "test", "metrics"}); a pair absent there shows as
"missing" in the tables (never silently dropped).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..entrypoint import run_cli
from .matrix import MatrixError, write_matrix


def read_results(paths: Iterable[Path]) -> dict[tuple[str, str], dict[str, float]]:
    """`{(train, test): metrics}` from cross-evaluation result files ({"train", "test", "metrics"})."""
    results: dict[tuple[str, str], dict[str, float]] = {}
    for path in paths:
        try:
            raw = json.loads(Path(path).read_text())
            results[(str(raw["train"]), str(raw["test"]))] = dict(raw["metrics"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MatrixError(
                f"{path}: not a cross-evaluation result ({e!r}); rerun cross_evaluate"
            ) from None
    return results


def collect_dirs(dirs: Iterable[Path], where: str) -> dict[tuple[str, str], dict[str, float]]:
    """`{(train, test): metrics}` from every `<dir>/<test>.json` of `dirs` (one dir per trained model,
    as the cross-evaluate stage writes it); none at all is an error naming `where`."""
    results = read_results(p for d in dirs for p in sorted(Path(d).glob("*.json")))
    if not results:
        raise MatrixError(f"{where}: no cross-evaluation results (<train>/<test>.json); run cross_evaluate")
    return results


def collect(runs_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    """`{(train, test): metrics}` from `<runs_dir>/<train>/<test>.json`."""
    return collect_dirs(sorted(p for p in Path(runs_dir).glob("*") if p.is_dir()), str(runs_dir))


def main(argv: Sequence[str] | None = None, prog: str = "python -m spherereid.experiments.matrix_cli") -> int:
    """CLI: write the matrix files from the cross-evaluation results."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("outputs/cross/runs"))
    ap.add_argument("--out", type=Path, default=Path("outputs/cross"))
    args = ap.parse_args(argv)

    def body() -> int:
        paths = write_matrix(collect(args.runs), args.out)
        print(f"cross-dataset matrix: {paths['md']}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    from spherereid.experiments import matrix_cli as stage

    sys.exit(stage.main())
