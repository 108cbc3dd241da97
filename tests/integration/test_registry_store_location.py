"""A model version is registered in the store the run is in, whatever the working directory: with
MLFLOW_TRACKING_URI unset, a queued DVC experiment works in a temporary copy of the repository while the
store is the repository's (MLflow's sqlite registry resolves a `models:/m-...` source through the global
tracking URI, which defaults to the working directory)."""

from __future__ import annotations

from spherereid.tracking import client as mlflow_client
from spherereid.tracking import registry


def test_register_a_logged_model_of_a_store_outside_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "repo").mkdir()
    (tmp_path / "workspace").mkdir()
    monkeypatch.chdir(tmp_path / "workspace")
    uri = f"sqlite:///{tmp_path / 'repo' / 'mlflow.db'}"
    c = mlflow_client.client(uri)
    exp = c.create_experiment("e", artifact_location=(tmp_path / "repo" / "mlartifacts").as_uri())
    run_id = c.create_run(exp).info.run_id
    model = c.create_logged_model(exp, source_run_id=run_id, name="reid")
    res = registry.register_and_gate(
        name="m",
        model_uri=f"models:/{model.model_id}",
        run_id=run_id,
        metrics={"rank1": 0.9, "mAP": 0.8},
        dataset_hash="h",
        min_rank1=0.0,
        min_map=0.0,
        tags={},
        tracking_uri=uri,
    )
    assert res.version == 1
    version = c.get_model_version("m", "1")
    assert version.run_id == run_id and model.model_id in version.source
    assert not (tmp_path / "workspace" / "mlflow.db").exists()
