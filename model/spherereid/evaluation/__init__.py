"""Evaluation: exact, chunked ReID metrics (CMC, mAP, mINP), protocols, distances, the raw-pixel baseline and
the features CLI. Uses data and config only, never training."""
