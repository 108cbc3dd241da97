"""tracking/client.py: the only home of MLflow's private API in the library, and what it does.

The scan fails on a private MLflow name anywhere else in model/spherereid: an import of (or from) a
private mlflow module, an imported private name, or one of the private attributes client.py wraps."""

import ast
import os
from pathlib import Path

import pytest

from spherereid.tracking import client as mlflow_compat  # its private-API section

PKG = Path(__file__).resolve().parents[2] / "model" / "spherereid"
COMPAT = PKG / "tracking" / "client.py"
# Private members (of public MLflow objects) wrapped by mlflow_compat; their use elsewhere is a hit.
WRAPPED = {"_to_mlflow_entity", "_tracking_uri", "_registry_uri", "SystemMetricsMonitor"}


def _private_mlflow_uses(path: Path) -> list[str]:
    """`file:line name` of each private MLflow use in `path`."""
    rel = path.name
    hits = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            names = node.module.split(".") + [a.name for a in node.names]
            hits += [f"{rel}:{node.lineno} {n}" for n in names if n.startswith("_") or n in WRAPPED]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mlflow" and any(p.startswith("_") for p in parts):
                    hits.append(f"{rel}:{node.lineno} {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in WRAPPED:
            hits.append(f"{rel}:{node.lineno} .{node.attr}")
    return hits


def test_no_private_mlflow_api_outside_the_compat_module():
    files = [p for p in sorted(PKG.rglob("*.py")) if p != COMPAT]
    assert len(files) > 40
    assert [hit for path in files for hit in _private_mlflow_uses(path)] == []
    assert _private_mlflow_uses(COMPAT)  # the scan sees what the compat module does


def test_the_scan_finds_each_kind_of_private_use(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import mlflow.tracking._tracking_service.utils\n"
        "from mlflow.tracking._tracking_service import utils\n"
        "from mlflow.utils import _private\n"
        "from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor\n"
        "entity = dataset._to_mlflow_entity()\n"
        "import mlflow.pyfunc\n"
        "from mlflow.entities import Metric\n"
    )
    assert _private_mlflow_uses(bad) == [
        "bad.py:1 mlflow.tracking._tracking_service.utils",
        "bad.py:2 _tracking_service",
        "bad.py:3 _private",
        "bad.py:4 SystemMetricsMonitor",
        "bad.py:5 ._to_mlflow_entity",
    ]


def test_using_tracking_uri_sets_the_uri_for_the_block_and_restores_global_and_environment(
    tmp_path, monkeypatch
):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    assert mlflow_compat._global_tracking_uri() is None
    with mlflow_compat.using_tracking_uri(uri):
        assert mlflow.get_tracking_uri() == uri and os.environ["MLFLOW_TRACKING_URI"] == uri
    assert mlflow_compat._global_tracking_uri() is None and "MLFLOW_TRACKING_URI" not in os.environ

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    with pytest.raises(RuntimeError), mlflow_compat.using_tracking_uri(uri):
        raise RuntimeError("the block fails")
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///elsewhere.db"
    assert mlflow_compat._global_tracking_uri() is None


def test_dataset_entity_carries_name_digest_and_source():
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    entity = mlflow_compat.dataset_entity(
        MetaDataset(LocalArtifactDatasetSource("/data/prepared/x"), name="x-train", digest="abc123")
    )
    assert (entity.name, entity.digest, entity.source_type) == ("x-train", "abc123", "local")
    assert "/data/prepared/x" in entity.source


@pytest.mark.slow  # a sqlite store and the monitor's start: about 12 s
def test_system_metrics_record_a_last_sample_even_for_a_short_block(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri()))
    with mlflow_compat.system_metrics(run.info.run_id, tracking_uri=uri, interval=60):
        pass  # far shorter than the interval
    logged = client.get_run(run.info.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in logged and 0 <= logged["system/cpu_utilization_percentage"]


def test_system_metrics_that_cannot_start_are_a_warning_and_the_block_runs(caplog):
    ran = []
    with mlflow_compat.system_metrics("no-such-run", tracking_uri="not-a-scheme://x", interval=60):
        ran.append(1)
    assert ran == [1]
    assert "system metrics are not recorded for run no-such-run" in caplog.text
