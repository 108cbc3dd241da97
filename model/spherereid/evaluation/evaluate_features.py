"""Rank saved features under the standard protocol and print the metrics as JSON.

    python -m spherereid.evaluation.evaluate_features FEATURES.npz [--metric cosine|euclidean] [--max-rank 50]
                                           [--query-chunk 1024] [--out metrics.json]

FEATURES.npz holds qf (Q, D) and gf (G, D) float features, and q_pids, g_pids, q_camids, g_camids
integer labels (the evaluate stage writes such a file as features.npz). stdout gets one JSON object with
rank1, rank5, rank10, mAP, mAP_official, mINP, num_valid_queries, num_queries; ``--out`` also writes
it, with the whole CMC curve ("cmc"). Bad input: a one-line error on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .metrics import MetricsError, evaluate_features

ARRAYS = ("qf", "gf", "q_pids", "g_pids", "q_camids", "g_camids")
SUMMARY = ("rank1", "rank5", "rank10", "mAP", "mAP_official", "mINP", "num_valid_queries", "num_queries")


class InputError(ValueError):
    """The features file is missing or malformed."""


def load_features(path: Path) -> dict[str, np.ndarray]:
    """The six arrays of a features .npz; InputError naming the file and the problem otherwise."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InputError(f"{path}: not an .npz archive (expected arrays {', '.join(ARRAYS)})")
        with data:
            missing = [name for name in ARRAYS if name not in data.files]
            if missing:
                raise InputError(
                    f"{path}: missing array(s) {', '.join(missing)} (expected {', '.join(ARRAYS)})"
                )
            arrays = {name: data[name] for name in ARRAYS}
    except InputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    for name in ("qf", "gf"):
        if arrays[name].dtype.kind not in "fiu":
            raise InputError(f"{path}: {name} must be numeric, got dtype {arrays[name].dtype}")
    return arrays


def main(
    argv: Sequence[str] | None = None, prog: str = "python -m spherereid.evaluation.evaluate_features"
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("features", type=Path, help=".npz with qf, gf, q_pids, g_pids, q_camids, g_camids")
    parser.add_argument(
        "--metric", choices=("cosine", "euclidean"), default="cosine", help="distance (default cosine)"
    )
    parser.add_argument("--max-rank", type=int, default=50, help="length of the CMC curve (default 50)")
    parser.add_argument("--query-chunk", type=int, default=1024, help="queries per distance chunk")
    parser.add_argument("--out", type=Path, help="also write the JSON (with the CMC curve) to this file")
    args = parser.parse_args(argv)
    try:
        if args.max_rank < 1 or args.query_chunk < 1:
            raise InputError("--max-rank and --query-chunk must be >= 1")
        arrays = load_features(args.features)
        result = evaluate_features(
            arrays["qf"],
            arrays["gf"],
            arrays["q_pids"],
            arrays["g_pids"],
            arrays["q_camids"],
            arrays["g_camids"],
            metric=args.metric,
            max_rank=args.max_rank,
            query_chunk=args.query_chunk,
        )
        full = result.to_dict()
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(full, indent=2) + "\n")
    except (InputError, MetricsError) as exc:
        print(
            f"error: {args.features}: {exc}" if isinstance(exc, MetricsError) else f"error: {exc}",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps({key: full[key] for key in SUMMARY}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
