"""Evaluation: exact, chunked ReID metrics (CMC, mAP, mINP). Uses data and config only, never training.

metrics (the front ends: evaluate_distmat, evaluate_features, top_k), results (RankingResult, the
per-query accumulator, REPORTED_KEYS), errors (MetricsError), ranking (the engine: ranks of the true
matches without sorting the gallery), protocols/ (one module per protocol), measure (what the evaluate
stage measures on a prepared set, under its protocol), distances, inputs (shared checks), rerank/ (exact
k-reciprocal re-ranking: the front ends, sources, reciprocal), baseline (raw pixels), features_cli
(``spherereid evaluate-features``).
"""
