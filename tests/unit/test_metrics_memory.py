"""Bounded memory: 10,000 queries x 1,000,000 gallery (d=256) evaluated in a child process whose peak
resident memory must stay under 4 GB (the gallery features alone take 1 GB)."""

import json
import subprocess
import sys
import textwrap

import pytest

LIMIT_BYTES = 4 * 1024**3

CHILD = textwrap.dedent(
    """
    import json, resource
    import numpy as np
    import torch
    from spherereid.evaluation.distances import pairwise_distance
    from spherereid.evaluation.metrics import evaluate_features

    G, Q, D, IDS = 1_000_000, 10_000, 256, 5_000
    gen = torch.Generator().manual_seed(0)
    # 5,000 identities, 2 queries each (cameras 0 and 1) and 6 gallery images (cameras 0..5);
    # 50,000 junk (pid -1); the rest are distractors (pid 0).
    g_pids = np.zeros(G, dtype=np.int64)
    g_pids[: 6 * IDS] = np.repeat(np.arange(1, IDS + 1), 6)
    g_pids[6 * IDS : 6 * IDS + 50_000] = -1
    g_cams = np.arange(G) % 6
    q_pids = np.repeat(np.arange(1, IDS + 1), 2)
    q_cams = np.arange(Q) % 2
    centres = torch.randn(IDS + 1, D, generator=gen)
    gf = torch.randn(G, D, generator=gen)  # 1 GB; identity items get their centre added in place
    gf[: 6 * IDS] += centres[torch.from_numpy(g_pids[: 6 * IDS])]
    qf = torch.randn(Q, D, generator=gen) + centres[torch.from_numpy(q_pids)]
    res = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, metric="cosine")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kilobytes

    # Correctness at scale: the first 8 queries against a stable argsort of their full distance rows.
    dist = pairwise_distance(qf[:8], gf).numpy()
    aps = []
    for i in range(8):
        order = np.argsort(dist[i], kind="stable")
        keep = (g_pids[order] != -1) & ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        ranks = np.flatnonzero(g_pids[order][keep] == q_pids[i])
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / (ranks + 1)))
    sub = evaluate_features(qf[:8], gf, q_pids[:8], g_pids, q_cams[:8], g_cams, metric="cosine")
    print(json.dumps({"peak": peak, "result": res.to_dict(), "ref_map8": float(np.mean(aps)),
                      "map8": sub.mAP}))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_thousand_by_one_million_within_4gb():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=880)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"peak RSS of the child: {out['peak'] / 1024**3:.2f} GB")  # shown with pytest -s
    assert out["peak"] < LIMIT_BYTES, f"peak RSS {out['peak'] / 1024**3:.2f} GB"
    res = out["result"]
    assert (res["num_valid_queries"], res["num_queries"]) == (10_000, 10_000)
    assert out["map8"] == pytest.approx(out["ref_map8"], abs=1e-12)
