"""distances: cosine and euclidean matrices against numpy."""

import numpy as np
import pytest
import torch

from spherereid.evaluation.distances import pairwise_distance
from spherereid.evaluation.metrics import MetricsError, evaluate_features


def test_pairwise_distance_values():
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    qn = qf / np.linalg.norm(qf, axis=1, keepdims=True)
    gn = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    cos = pairwise_distance(qf, gf, "cosine")
    assert cos.dtype == torch.float32 and cos.shape == (5, 7)
    np.testing.assert_allclose(cos.numpy(), 1 - qn @ gn.T, atol=1e-5)
    euc = pairwise_distance(torch.from_numpy(qf), gf, "euclidean").numpy()
    np.testing.assert_allclose(euc, np.linalg.norm(qf[:, None] - gf[None], axis=2), atol=1e-4)


def test_distance_errors_are_metrics_errors_naming_the_problem():
    # One error type: callers catch MetricsError, no layer maps DistanceError to it.
    with pytest.raises(MetricsError, match="unknown metric 'manhattan'"):
        pairwise_distance(np.zeros((1, 2)), np.zeros((1, 2)), "manhattan")
    with pytest.raises(MetricsError, match="feature dimensions differ"):
        pairwise_distance(np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(MetricsError, match="qf: expected a 2-D array"):
        evaluate_features(np.zeros(3), np.zeros((1, 3)), [1], [1], [0], [1])
