"""Wall time and peak memory of exact k-reciprocal re-ranking (evaluation.rerank; k1 20, k2 6, lambda 0.3).

Cases (one fresh subprocess each, so that peak RSS from ``resource.getrusage`` is the case's own):
  - Market-sized: 3,368 queries x 15,913 gallery, d = 1,024 (the real Market-1501 label structure when
    /work/shared/data/market1501-labels is present, as in eval_speed.py);
  - Market+100k: the same plus 100,000 distractor gallery rows, where one dense (Q+G)^2 float32 matrix
    would take 57 GB;
  - ``--galleries`` gives other gallery sizes: smaller ones take the first G gallery rows of a random
    permutation, larger ones add distractors (pid 0) around their own random centres.
Features: one random centre per identity plus noise, unit rows (eval_speed.features). Prints, per case,
the wall and CPU time of re-ranked evaluation (``evaluate_reranked``: neighbours, sparse encoding,
Jaccard and ranking, chunk by chunk) and of plain evaluation, the peak RSS of re-ranking and what the
features alone take, both metric sets, and how the time grows with N = Q + G (power-law exponent between
consecutive cases; the neighbour pass is O(N^2 d), the rest O(N k1^2) plus O(Q G) for the output). The
machine may be shared: CPU time is the steadier figure.

    python benchmarks/rerank.py [--galleries 15913,115913] [--dim 1024] [--noise 2.6]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_speed import LABELS, features, market_structure  # noqa: E402

from spherereid.evaluation import metrics  # noqa: E402
from spherereid.evaluation.rerank import RerankParams, evaluate_reranked  # noqa: E402

MARKET_GALLERY = 15_913


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def add_distractors(gf: torch.Tensor, n: int, noise: float, gen: torch.Generator) -> torch.Tensor:
    """gf (G, dim) followed by n unit rows around n // 5 + 1 random centres (people who are not in the
    query set), written block by block into one (G + n, dim) tensor."""
    dim = gf.shape[1]
    out = torch.empty(gf.shape[0] + n, dim)
    out[: gf.shape[0]] = gf
    centres = torch.randn(n // 5 + 1, dim, generator=gen) / math.sqrt(dim)
    for s in range(0, n, 8192):
        m = min(8192, n - s)
        owner = torch.randint(0, centres.shape[0], (m,), generator=gen)
        block = torch.randn(m, dim, generator=gen).mul_(noise).add_(centres[owner])
        out[gf.shape[0] + s : gf.shape[0] + s + m] = torch.nn.functional.normalize(block, dim=1)
    return out


def case(gallery: int, dim: int, noise: float, labels_dir: Path) -> dict:
    """Build one case and time it (runs in the child process)."""
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    qp, qc, gp, gc, source = market_structure(labels_dir, rng)
    ids = sorted(set(qp.tolist()) | set(gp.tolist()) - {0, -1})
    centres = {pid: torch.randn(dim, generator=gen) / np.sqrt(dim) for pid in ids}
    scale = noise / np.sqrt(dim)
    qf, gf = features(qp, centres, scale, gen), features(gp, centres, scale, gen)
    if gallery < len(gp):
        keep = np.sort(rng.permutation(len(gp))[:gallery])
        gf, gp, gc = gf[torch.from_numpy(keep)], gp[keep], gc[keep]
    elif gallery > len(gp):
        extra = gallery - len(gp)
        gf = add_distractors(gf, extra, scale, gen)
        gp = np.concatenate([gp, np.zeros(extra, np.int64)])
        gc = np.concatenate([gc, rng.integers(0, int(gc.max()) + 1, extra)])
    labels = (qp, gp, qc, gc)
    features_gb = peak_rss_gb()
    t0, c0 = time.perf_counter(), time.process_time()
    reranked = evaluate_reranked(qf, gf, *labels, RerankParams(20, 6, 0.3))
    t_rerank, c_rerank = time.perf_counter() - t0, time.process_time() - c0
    rerank_gb = peak_rss_gb()  # before the plain evaluation, so the peak is re-ranking's own
    t0 = time.perf_counter()
    plain = metrics.evaluate_features(qf, gf, *labels)
    t_plain = time.perf_counter() - t0
    keys = ("rank1", "rank5", "mAP", "mINP")
    return {
        "queries": len(qp),
        "gallery": len(gp),
        "dim": dim,
        "labels": source,
        "threads": torch.get_num_threads(),
        "plain_s": t_plain,
        "rerank_s": t_rerank,
        "rerank_cpu_s": c_rerank,
        "features_rss_gb": features_gb,
        "peak_rss_gb": rerank_gb,
        "plain": {k: plain.to_dict()[k] for k in keys},
        "rerank": {k: reranked.to_dict()[k] for k in keys},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--galleries", default=f"{MARKET_GALLERY},{MARKET_GALLERY + 100_000}")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--noise", type=float, default=2.6, help="noise norm relative to unit centres")
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one case, JSON on stdout
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(case(args.child, args.dim, args.noise, args.labels)))
        return 0

    results = []
    for gallery in (int(g) for g in args.galleries.split(",")):
        cmd = [sys.executable, __file__, "--child", str(gallery), "--dim", str(args.dim)]
        cmd += ["--noise", str(args.noise), "--labels", str(args.labels)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "child failed")
            return 1
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        n = r["queries"] + r["gallery"]
        dense_gb = n * n * 4 / 1e9
        print(
            f"Q {r['queries']:,} x G {r['gallery']:,} (N {n:,}), d={r['dim']}, {r['threads']} threads: "
            f"re-ranked evaluation {r['rerank_s']:.1f} s wall, {r['rerank_cpu_s']:.1f} s CPU "
            f"(plain {r['plain_s']:.1f} s), "
            f"peak RSS {r['peak_rss_gb']:.2f} GB (features and data alone {r['features_rss_gb']:.2f} GB; "
            f"one dense N x N float32 matrix: {dense_gb:.1f} GB)"
        )
        print(f"    plain    {r['plain']}\n    reranked {r['rerank']}")
    print(f"labels: {results[0]['labels']}")
    for a, b in zip(results, results[1:]):
        na, nb = a["queries"] + a["gallery"], b["queries"] + b["gallery"]
        wall, cpu = b["rerank_s"] / a["rerank_s"], b["rerank_cpu_s"] / a["rerank_cpu_s"]
        print(
            f"N {na:,} -> {nb:,} (x{nb / na:.2f}): wall x{wall:.2f}, CPU x{cpu:.2f}, "
            f"exponent {math.log(cpu) / math.log(nb / na):.2f} on CPU time (2 = quadratic)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
