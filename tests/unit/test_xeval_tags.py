"""xeval.<test>.<metric> version tags: the names and values, and that they land on a real sqlite registry."""

from __future__ import annotations

from spherereid.tracking import xeval


def test_xeval_tags_names_and_rounding():
    tags = xeval.xeval_tags(
        {"synthetic_b": {"rank1": 0.41236, "mAP": 0.2, "mINP": 0.1}, "synthetic": {"rank1": 1}}
    )
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
    xeval.tag_version("reid", int(mv.version), {"synthetic_b": {"rank1": 0.5, "mAP": 0.25}})
    tags = c.get_model_version("reid", mv.version).tags
    assert tags["xeval.synthetic_b.rank1"] == "0.5000" and tags["xeval.synthetic_b.mAP"] == "0.2500"
