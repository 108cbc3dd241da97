"""rerank.params: bad k1, k2, lambda are errors naming the parameter."""

import pytest

from spherereid.evaluation.metrics import MetricsError
from spherereid.evaluation.rerank import RerankParams


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0, 0, 0.3), "k1 must be an integer >= 1"),
        ((5, 6, 0.3), "k2 must be an integer in 1..5 (at most k1), got 6"),
        ((5, 0, 0.3), "k2 must be an integer in 1..5"),
        ((5, 2, 1.5), "lambda must be in [0, 1], got 1.5"),
        ((5, 2, -0.1), "lambda must be in [0, 1]"),
    ],
)
def test_bad_parameters_name_the_parameter(args, message):
    with pytest.raises(MetricsError) as err:
        RerankParams(*args)
    assert message in str(err.value)
