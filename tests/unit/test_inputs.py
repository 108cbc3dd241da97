"""inputs: the finiteness check needs no full-size temporary."""

import torch


def test_all_finite_without_full_size_temporary():
    from spherereid.evaluation.inputs import all_finite

    x = torch.full((3, 4), 3e38)  # row sums overflow to inf, yet every entry is finite
    assert all_finite(x)
    x[1, 2] = float("nan")
    assert not all_finite(x)
    y = torch.zeros(2, 2)
    y[0, 0] = float("-inf")
    assert not all_finite(y)
