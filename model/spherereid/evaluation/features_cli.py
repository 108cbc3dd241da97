"""Rank saved features under the standard protocol and print the metrics as JSON.

    python -m spherereid.evaluation.features_cli FEATURES.npz [--metric cosine|euclidean] [--max-rank 50]
                                      [--query-chunk 1024] [--out metrics.json]
                                      [--rerank [--k1 20] [--k2 6] [--lambda 0.3]]

FEATURES.npz holds qf (Q, D) and gf (G, D) float features, and q_pids, g_pids, q_camids, g_camids
integer labels (the evaluate stage writes such a file as features.npz). stdout gets one JSON object with
the reported metrics (``results.REPORTED_KEYS``: rank1, rank5, rank10, mAP, mAP_official, mINP,
num_valid_queries, num_queries); ``--out`` also writes it, with the whole CMC curve ("cmc").
``--rerank`` ranks by k-reciprocal re-ranked distances instead (``evaluation.rerank``; k1, k2, lambda as
in the paper). Bad input: a one-line error on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MetricsError
from .metrics import evaluate_features
from .rerank import RerankParams, check_rerank_params, evaluate_reranked
from .results import REPORTED_KEYS

ARRAYS = ("qf", "gf", "q_pids", "g_pids", "q_camids", "g_camids")


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
    argv: Sequence[str] | None = None, prog: str = "python -m spherereid.evaluation.features_cli"
) -> int:
    """Print the reported metrics of a features file as one JSON line; 2 and a one-line error on bad input."""
    args = _parser(prog).parse_args(argv)
    try:
        full = _evaluate(args)
    except (InputError, MetricsError) as exc:
        print(
            f"error: {args.features}: {exc}" if isinstance(exc, MetricsError) else f"error: {exc}",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(json.dumps({key: full[key] for key in REPORTED_KEYS}))
    return 0


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("features", type=Path, help=".npz with qf, gf, q_pids, g_pids, q_camids, g_camids")
    parser.add_argument(
        "--metric", choices=("cosine", "euclidean"), default="cosine", help="distance (default cosine)"
    )
    parser.add_argument("--max-rank", type=int, default=50, help="length of the CMC curve (default 50)")
    parser.add_argument("--query-chunk", type=int, default=1024, help="queries per distance chunk")
    parser.add_argument("--out", type=Path, help="also write the JSON (with the CMC curve) to this file")
    parser.add_argument("--rerank", action="store_true", help="rank by k-reciprocal re-ranked distances")
    parser.add_argument(
        "--k1", type=int, help="re-ranking: reciprocal neighbours (default 20; needs --rerank)"
    )
    parser.add_argument("--k2", type=int, help="re-ranking: query expansion rows (default 6; needs --rerank)")
    parser.add_argument(
        "--lambda", dest="lambda_", type=float, help="re-ranking: original-distance weight (default 0.3)"
    )
    return parser


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """``RankingResult.to_dict()`` of the features file (re-ranked with --rerank), also written to --out."""
    if args.max_rank < 1 or args.query_chunk < 1:
        raise InputError("--max-rank and --query-chunk must be >= 1")
    rerank = _rerank_params(args)
    arrays = load_features(args.features)
    qf, gf, q_pids, g_pids, q_camids, g_camids = (arrays[name] for name in ARRAYS)
    labelled = (qf, gf, q_pids, g_pids, q_camids, g_camids)
    if rerank is None:
        result = evaluate_features(
            *labelled, metric=args.metric, max_rank=args.max_rank, query_chunk=args.query_chunk
        )
    else:
        result = evaluate_reranked(
            *labelled, rerank, metric=args.metric, max_rank=args.max_rank, query_chunk=args.query_chunk
        )
    full = result.to_dict()
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(full, indent=2) + "\n")
    return full


def _rerank_params(args: argparse.Namespace) -> RerankParams | None:
    """RerankParams from --k1/--k2/--lambda (paper defaults), None without --rerank; InputError naming
    the flag when a value is out of range or given without --rerank."""
    given = {"--k1": args.k1, "--k2": args.k2, "--lambda": args.lambda_}
    if not args.rerank:
        stray = [flag for flag, value in given.items() if value is not None]
        if stray:
            raise InputError(f"{', '.join(stray)} only apply with --rerank: add --rerank or drop them")
        return None
    default = RerankParams()
    k1 = default.k1 if args.k1 is None else args.k1
    k2 = default.k2 if args.k2 is None else args.k2
    lambda_ = default.lambda_ if args.lambda_ is None else args.lambda_
    try:
        check_rerank_params(k1, k2, lambda_, names=("--k1", "--k2", "--lambda"))
    except MetricsError as exc:
        raise InputError(str(exc)) from None
    return RerankParams(k1, k2, lambda_)


if __name__ == "__main__":
    sys.exit(main())
