"""deploy/flavors.py: the pip pins both flavours log (the log-once bookkeeping needs a store: it is
exercised in tests/integration/test_registry.py and test_onnx_flavor.py)."""

from importlib.metadata import version

from spherereid.deploy.flavors import pip_pins


def test_pins_are_the_installed_versions_without_local_suffixes_and_skip_missing_packages():
    pins = pip_pins(("numpy", "no-such-package-for-spherereid", "torch"))
    assert pins == [f"numpy=={version('numpy')}", f"torch=={version('torch').split('+')[0]}"]
    assert all("+" not in pin for pin in pip_pins())
    assert [p.split("==")[0] for p in pip_pins()] == ["torch", "torchvision", "numpy", "mlflow"]
