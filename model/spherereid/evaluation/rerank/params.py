"""Re-ranking parameters (k1, k2, lambda) and their check; the check itself lives in ``config`` (one
source for the params file and the library)."""

from __future__ import annotations

from dataclasses import dataclass

from ...config import rerank_param_problem
from ..errors import MetricsError


@dataclass(frozen=True)
class RerankParams:
    """k1: neighbours for the reciprocal sets; k2: rows averaged in query expansion; lambda_: weight of
    the original distance. Defaults as in the paper's experiments."""

    k1: int = 20
    k2: int = 6
    lambda_: float = 0.3

    def __post_init__(self) -> None:
        check_rerank_params(self.k1, self.k2, self.lambda_)


def check_rerank_params(
    k1: float, k2: float, lambda_: float, names: tuple[str, str, str] = ("k1", "k2", "lambda")
) -> None:
    """Raise MetricsError naming the parameter (``names`` gives the flag or key spelling) when
    k1 < 1, k2 outside 1..k1 or lambda outside [0, 1]."""
    problem = rerank_param_problem(k1, k2, lambda_, names)
    if problem is not None:
        raise MetricsError(problem)


PAPER_PARAMS = RerankParams()  # k1 20, k2 6, lambda 0.3: the default of every re-ranking front end
