"""rerank.reciprocal: the one-sort unique keys behind the sparse set operations."""

import numpy as np
import torch

from spherereid.evaluation.rerank import reciprocal


def test_unique_keys_is_torch_unique():
    keys = torch.from_numpy(np.random.default_rng(0).integers(0, 50, 300))
    uniq, inverse = reciprocal.unique_keys(keys)
    want_uniq, want_inverse = torch.unique(keys, return_inverse=True)
    assert torch.equal(uniq, want_uniq) and torch.equal(inverse, want_inverse)
    assert reciprocal.unique_keys(torch.zeros(0, dtype=torch.int64))[0].numel() == 0
