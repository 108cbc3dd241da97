"""xeval.<test>.<metric> version tags: the names and values, and that they land on a real sqlite registry."""

from __future__ import annotations

from spherereid.stages import cross_evaluate
from spherereid.tracking import registry
from spherereid.tracking.tags import xeval_tags


def test_xeval_tags_names_and_rounding():
    tags = xeval_tags({"synthetic_b": {"rank1": 0.41236, "mAP": 0.2, "mINP": 0.1}, "synthetic": {"rank1": 1}})
    assert tags == {
        "xeval.synthetic.rank1": "1.0000",  # a test set without mAP gets only the metrics it has
        "xeval.synthetic_b.mAP": "0.2000",
        "xeval.synthetic_b.rank1": "0.4124",
    }


def test_tag_version_sets_the_tags_on_the_registered_version(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from mlflow import MlflowClient

    c = MlflowClient()
    c.create_registered_model("reid")
    run = c.create_run(c.create_experiment("x", artifact_location=str(tmp_path / "art")))
    mv = c.create_model_version("reid", source=str(tmp_path / "art"), run_id=run.info.run_id)
    registry.tag_version("reid", int(mv.version), {"synthetic_b": {"rank1": 0.5, "mAP": 0.25}})
    tags = c.get_model_version("reid", mv.version).tags
    assert tags["xeval.synthetic_b.rank1"] == "0.5000" and tags["xeval.synthetic_b.mAP"] == "0.2500"


def test_the_registered_version_is_found_from_the_training_runs_tags(tmp_path, monkeypatch):
    """The register stage tags the run registered_model/registered_version; a refused run has neither."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    from mlflow import MlflowClient

    from spherereid.tracking import runs

    c = MlflowClient()
    c.create_registered_model("reid")
    exp = c.create_experiment("x", artifact_location=str(tmp_path / "art"))
    registered, refused = c.create_run(exp), c.create_run(exp)
    for _ in range(2):  # version 2 comes from `registered`
        mv = c.create_model_version("reid", source=str(tmp_path / "art"), run_id=registered.info.run_id)
    c.set_tag(registered.info.run_id, "registered_model", "reid")
    c.set_tag(registered.info.run_id, "registered_version", str(mv.version))
    c.set_tag(refused.info.run_id, "quality_gate", "failed")
    found = {"b": {"rank1": 0.25, "mAP": 0.125}}
    ref = runs.RunRef(registered.info.run_id, exp, uri)
    assert registry.registered_version(ref) == ("reid", 2)
    assert registry.registered_version(runs.RunRef(refused.info.run_id, exp, uri)) is None
    # what the KFP component then does with it: tags on version 2 only, and the card's table
    c.update_model_version("reid", "2", description="# reid v2\n\n## Evaluation\n")
    tags = cross_evaluate.record_on_version("reid", 2, "a", {"a": {"rank1": 0.5, "mAP": 0.25}, **found})
    assert tags == {
        "xeval.a.mAP": "0.2500",
        "xeval.a.rank1": "0.5000",
        "xeval.b.mAP": "0.1250",
        "xeval.b.rank1": "0.2500",
    }
    assert c.get_model_version("reid", "2").tags["xeval.b.rank1"] == "0.2500"
    assert "xeval.b.rank1" not in c.get_model_version("reid", "1").tags
    card = c.get_model_version("reid", "2").description
    assert card.startswith("# reid v2") and "| b | 25.00% | 12.50% |" in card and "| a (own) |" in card
