"""tracking/versions.py: which run tags a registered version carries."""

from spherereid.tracking.versions import LINEAGE_TAGS, version_tags


def test_a_version_carries_the_runs_lineage_tags_the_given_dataset_and_the_extra_tags():
    run_tags = {"git_commit": "c0ffee", "seed": "0", "dataset": "from-the-run", "loss": "ignored"}
    assert version_tags(run_tags, dataset="market1501") == {
        "git_commit": "c0ffee",
        "seed": "0",
        "dataset": "market1501",
    }
    extra = {"onnx.opset": "18", "seed": "overridden"}
    assert version_tags(run_tags, dataset="x", extra=extra) == {
        "git_commit": "c0ffee",
        "seed": "overridden",
        "dataset": "x",
        "onnx.opset": "18",
    }
    assert set(LINEAGE_TAGS) >= {"dataset", "git_commit", "dvc_data_hash", "params_hash"}
