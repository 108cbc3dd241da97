"""Speed of the ranking evaluator on a Market-1501-sized case (3,368 queries x 15,913 gallery, d=1024).

Times, on this machine's default torch threads:
  (a) ``metrics.evaluate_distmat`` given the distance matrix,
  (b) ``distances.pairwise_distance`` (the matrix itself),
  (c) ``metrics.evaluate_features`` (both, chunk by chunk),
and a plain reference evaluator (numpy stable argsort of the whole matrix, then a loop over queries, as
the common toolkits do) on the same matrix; prints times and ratios and checks both give the same numbers
(within 1e-6).

The identity / camera structure is the real Market-1501 one from
/work/shared/data/market1501-labels/{queryID,queryCam,testID,testCam}.mat when present (gallery items
with testID == -1 dropped, as the loaders do), otherwise a synthetic one of the same size with junk and
distractors. Features: one random centre per identity plus noise, so rankings look like a trained
model's (default noise: rank-1 ~0.98, mAP ~0.8, mINP ~0.3).

A second case with features without signal (rankings near random) times the worst case.

    python benchmarks/eval_speed.py [--repeats 3] [--labels DIR] [--noise 2.6] [--hard-noise 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spherereid.evaluation import metrics
from spherereid.evaluation.distances import pairwise_distance

LABELS = Path("/work/shared/data/market1501-labels")


def market_structure(labels_dir: Path, rng: np.random.Generator):
    """(q_pids, q_cams, g_pids, g_cams, source) with 0-based cameras."""
    files = [labels_dir / f"{n}.mat" for n in ("queryID", "queryCam", "testID", "testCam")]
    if all(f.is_file() for f in files):
        import scipy.io

        def load(f: Path) -> np.ndarray:
            mat = scipy.io.loadmat(f)
            return np.asarray(next(v for k, v in mat.items() if not k.startswith("__"))).ravel()

        qp, qc, gp, gc = (load(f).astype(np.int64) for f in files)
        keep = gp != -1
        return qp, qc - 1, gp[keep], gc[keep] - 1, f"real Market-1501 labels ({labels_dir})"
    ids = np.arange(1, 752)
    g_ids = np.concatenate([rng.choice(ids, 15_913 - 2_798 - 500), np.zeros(2_798, int), -np.ones(500, int)])
    gc = rng.integers(0, 6, len(g_ids))
    qp, qc = [], []
    for pid in ids[:750]:
        for cam in np.unique(gc[g_ids == pid])[:5]:
            qp.append(pid)
            qc.append((cam + 1) % 6)
    qp, qc = np.array(qp[:3368]), np.array(qc[:3368])
    return qp, qc, g_ids, gc, "synthetic Market-sized structure (label files not found)"


def features(pids: np.ndarray, centres: dict[int, torch.Tensor], noise: float, gen: torch.Generator):
    dim = next(iter(centres.values())).numel()
    out = torch.randn(len(pids), dim, generator=gen) * noise
    for i, pid in enumerate(pids.tolist()):
        if pid > 0:
            out[i] += centres[pid]
    return torch.nn.functional.normalize(out, dim=1)


def reference(distmat: np.ndarray, qp, gp, qc, gc, max_rank: int):
    """Toolkit-style evaluator: full stable argsort, then per-query loop."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    cmcs, aps, aps_off, inps = [], [], [], []
    for i in range(len(qp)):
        order = indices[i]
        keep = (gp[order] != -1) & ~((gp[order] == qp[i]) & (gc[order] == qc[i]))
        matches = gp[order][keep] == qp[i]
        if not matches.any():
            continue
        ranks = np.flatnonzero(matches)
        j = np.arange(1, len(ranks) + 1)
        precision = j / (ranks + 1.0)
        prev = np.where(ranks == 0, 1.0, (j - 1) / np.maximum(ranks, 1))
        aps.append(precision.mean())
        aps_off.append(((prev + precision) / 2).mean())
        inps.append(len(ranks) / (ranks[-1] + 1.0))
        cmc = matches.cumsum()
        cmc[cmc > 1] = 1
        cmcs.append(cmc[:max_rank])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(aps_off)), float(np.mean(inps))


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times), statistics.median(times)


def compare(res, ref) -> dict[str, float]:
    cmc, ap, ap_off, inp = ref
    return {
        "cmc": float(np.abs(res.cmc - cmc).max()),
        "mAP": abs(res.mAP - ap),
        "mAP_official": abs(res.mAP_official - ap_off),
        "mINP": abs(res.mINP - inp),
    }


def summary(res) -> str:
    r = res.to_dict()
    return (
        f"rank1 {r['rank1']:.4f} rank5 {r['rank5']:.4f} rank10 {r['rank10']:.4f} mAP {r['mAP']:.4f} "
        f"mAP_official {r['mAP_official']:.4f} mINP {r['mINP']:.4f} "
        f"valid {r['num_valid_queries']}/{r['num_queries']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--noise", type=float, default=2.6, help="noise norm relative to unit centres")
    parser.add_argument("--hard-noise", type=float, default=30.0, help="noise of the worst case (0: skip)")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--max-rank", type=int, default=50)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    qp, qc, gp, gc, source = market_structure(args.labels, rng)
    labels = (qp, gp, qc, gc)
    ids = sorted(set(qp.tolist()) | set(gp.tolist()) - {0, -1})
    centres = {pid: torch.randn(args.dim, generator=gen) / np.sqrt(args.dim) for pid in ids}
    scale = args.noise / np.sqrt(args.dim)
    qf, gf = features(qp, centres, scale, gen), features(gp, centres, scale, gen)
    print(
        f"case: {len(qp)} queries x {len(gp)} gallery, d={args.dim}, {len(ids)} identities, "
        f"{int((gp == 0).sum())} distractors, {int((gp == -1).sum())} junk; {source}"
    )
    print(f"torch threads: {torch.get_num_threads()}, repeats: {args.repeats} (min / median)")

    dist, t_dist, m_dist = timed(lambda: pairwise_distance(qf, gf, "cosine"), args.repeats)
    res, t_eval, m_eval = timed(
        lambda: metrics.evaluate_distmat(dist, *labels, max_rank=args.max_rank), args.repeats
    )
    res_f, t_feat, m_feat = timed(
        lambda: metrics.evaluate_features(qf, gf, *labels, metric="cosine", max_rank=args.max_rank),
        args.repeats,
    )
    ref, t_ref, _ = timed(lambda: reference(dist.numpy(), *labels, args.max_rank), 1)
    print(f"metrics: {summary(res)}")
    print(f"(a) evaluator on distmat      {t_eval:8.3f} s  (median {m_eval:.3f})")
    print(f"(b) distance matrix           {t_dist:8.3f} s  (median {m_dist:.3f})")
    print(f"(c) evaluate_features (a+b)   {t_feat:8.3f} s  (median {m_feat:.3f})")
    print(f"    reference (argsort+loop)  {t_ref:8.3f} s")
    print(f"    speed-up of (a) over the reference: {t_ref / t_eval:.1f}x")
    diffs = compare(res, ref)
    print("agreement with reference (max abs diff): " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
    # The chunked matmul may round a few distances differently from the full one: informative only.
    print(f"features path vs distmat path: mAP diff {abs(res_f.mAP - res.mAP):.1e}")
    ok = all(v <= 1e-6 for v in diffs.values())

    if args.hard_noise > 0:
        hard = args.hard_noise / np.sqrt(args.dim)
        qf, gf = features(qp, centres, hard, gen), features(gp, centres, hard, gen)
        dist = pairwise_distance(qf, gf, "cosine")
        res, t_eval, m_eval = timed(
            lambda: metrics.evaluate_distmat(dist, *labels, max_rank=args.max_rank), args.repeats
        )
        ref, t_ref, _ = timed(lambda: reference(dist.numpy(), *labels, args.max_rank), 1)
        diffs = compare(res, ref)
        print(f"worst case (noise {args.hard_noise}, rankings near random): {summary(res)}")
        print(f"(a) evaluator on distmat      {t_eval:8.3f} s  (median {m_eval:.3f})")
        print(f"    reference (argsort+loop)  {t_ref:8.3f} s;  speed-up {t_ref / t_eval:.1f}x")
        print("agreement with reference: " + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))
        ok = ok and all(v <= 1e-6 for v in diffs.values())
    print(f"same numbers as the reference: {ok}")
    assert ok
    return 0


if __name__ == "__main__":
    sys.exit(main())
