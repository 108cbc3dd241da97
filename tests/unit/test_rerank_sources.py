"""rerank.sources: a matrix source reads columns of the full (N, N) matrix; bad shapes are one-line errors."""

import numpy as np
import pytest
import torch

from spherereid.evaluation.metrics import MetricsError
from spherereid.evaluation.rerank.sources import MatrixSource


def test_matrix_source_reads_columns_of_the_full_matrix():
    rng = np.random.default_rng(0)
    q_g, q_q, g_g = rng.random((2, 3)), rng.random((2, 2)), rng.random((3, 3))  # deliberately asymmetric
    full = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float32)
    source = MatrixSource(q_g, q_q, g_g)
    np.testing.assert_array_equal(source.rows(1, 4).numpy(), full.T[1:4])
    rows, cols = torch.tensor([0, 0, 3, 4, 2]), torch.tensor([1, 4, 0, 2, 2])
    np.testing.assert_array_equal(source.pairs(rows, cols).numpy(), full.T[rows, cols])


def test_bad_matrix_shapes_are_one_line_errors():
    with pytest.raises(MetricsError, match=r"q_q_dist \(2, 2\)"):
        MatrixSource(np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((3, 3)))
