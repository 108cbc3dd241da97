"""Session-wide guards shared by every test folder."""

import sys

import pytest


@pytest.fixture(autouse=True)
def _no_global_mlflow_uri_leaks():
    """A test that sets mlflow's process-global tracking or registry URI must not redirect later tests
    (which pass their store through MLFLOW_TRACKING_URI or an explicit client): reset both after each."""
    yield
    tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if tracking is not None:
        tracking._tracking_uri = None
    registry = sys.modules.get("mlflow.tracking._model_registry.utils")
    if registry is not None:
        registry._registry_uri = None
