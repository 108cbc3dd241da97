"""The evaluation's one error type: every invalid input (shape, NaN, label, argument, metric name) raises a
MetricsError, so callers catch one class and no layer translates another's errors."""

from __future__ import annotations


class MetricsError(ValueError):
    """Invalid evaluation input: shape mismatch, NaN, no valid query, bad argument."""


class DistanceError(MetricsError):
    """Invalid features or metric name for a distance matrix (a MetricsError: no mapping needed)."""
