"""rerank.reciprocal: the tie rule of the k nearest items, the tile pass equal to the row pass, and the
one-sort unique keys behind the sparse set operations."""

import numpy as np
import pytest
import torch
from fixtures.rerank_reference import clustered

from spherereid.evaluation.rerank import reciprocal
from spherereid.evaluation.rerank.sources import FeatureSource


@pytest.mark.parametrize("k", [1, 4, 8])
def test_nearest_k_breaks_ties_by_lower_index(k):
    d = torch.from_numpy(np.random.default_rng(k).integers(0, 4, (30, 8)).astype(np.float32))  # many ties
    d[:10] += torch.arange(8) * 10.0  # some rows without ties
    expected = np.argsort(d.numpy(), axis=1, kind="stable")[:, :k]
    idx, val = reciprocal.nearest_k(d, k)
    np.testing.assert_array_equal(idx.numpy(), expected)
    np.testing.assert_array_equal(val.numpy(), np.take_along_axis(d.numpy(), expected, axis=1))


def test_tile_pass_equals_row_pass():
    """The symmetric tile pass (features) gives the row pass's lists, distances and maxima exactly."""
    qf, gf, *_ = clustered(seed=13, num_q=15, num_g=60)
    source = FeatureSource(torch.from_numpy(qf), torch.from_numpy(gf))
    rows = reciprocal._row_pass(source, 9, chunk_elements=7 * 75)
    for chunk in (2 * 11 * 11, 2 * 40 * 40, 1 << 20):  # 11- and 40-item tiles (ragged), one tile
        tiles = reciprocal.nearest_neighbours(source, 9, chunk_elements=chunk)
        torch.testing.assert_close(tiles[0], rows[0], atol=0, rtol=0)
        torch.testing.assert_close(tiles[2], rows[2], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(tiles[1], rows[1], atol=1e-6, rtol=1e-6)


def test_unique_keys_is_torch_unique():
    keys = torch.from_numpy(np.random.default_rng(0).integers(0, 50, 300))
    uniq, inverse = reciprocal.unique_keys(keys)
    want_uniq, want_inverse = torch.unique(keys, return_inverse=True)
    assert torch.equal(uniq, want_uniq) and torch.equal(inverse, want_inverse)
    assert reciprocal.unique_keys(torch.zeros(0, dtype=torch.int64))[0].numel() == 0
