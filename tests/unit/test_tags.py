"""tracking/tags.py: the tags each builder makes, and which run tags a registered version carries."""

import math

from spherereid.tracking import tags


def test_a_version_carries_the_runs_lineage_tags_the_given_dataset_and_the_extra_tags():
    run_tags = {"git_commit": "c0ffee", "seed": "0", "dataset": "from-the-run", "loss": "ignored"}
    assert tags.version_lineage(run_tags, dataset="market1501") == {
        "git_commit": "c0ffee",
        "seed": "0",
        "dataset": "market1501",
    }
    extra = {"onnx.opset": "18", "seed": "overridden"}
    assert tags.version_lineage(run_tags, dataset="x", extra=extra) == {
        "git_commit": "c0ffee",
        "seed": "overridden",
        "dataset": "x",
        "onnx.opset": "18",
    }
    assert set(tags.VERSION_LINEAGE) >= {"dataset", "git_commit", "dvc_data_hash", "params_hash"}


def test_a_versions_tags_hold_the_lineage_the_numeric_metrics_the_run_and_the_verdict():
    metrics = {"rank1": 0.5, "mAP": 1, "num_queries": 12, "skip": "text", "flag": True}
    got = tags.version_tags({"seed": 3}, metrics, run_id="r1", dataset_hash=None, passed=False)
    assert got == {
        "seed": "3",
        "rank1": "0.5",
        "mAP": "1.0",
        "num_queries": "12.0",
        "run_id": "r1",
        "dataset_hash": "unknown",
        "quality_gate": "failed",
    }
    assert tags.metric_value(got, "mAP") == 1.0
    assert math.isnan(tags.metric_value(got, "mINP")) and math.isnan(tags.metric_value({"mAP": "x"}, "mAP"))


def test_the_training_runs_lineage_leaves_out_a_missing_dvc_hash_and_names_an_unknown_commit():
    got = tags.lineage_tags(
        dataset="d", dataset_hash="h", params_hash="p", seed=7, precision="bf16", git_commit=None
    )
    assert got == {
        "dataset": "d",
        "dataset_hash": "h",
        "params_hash": "p",
        "seed": "7",
        "precision": "bf16",
        "git_commit": "unknown",
    }
    with_dvc = tags.lineage_tags(
        dataset="d",
        dataset_hash="h",
        params_hash="p",
        seed=7,
        precision="fp32",
        git_commit="c",
        dvc_data_hash="m",
    )
    assert with_dvc["dvc_data_hash"] == "m" and with_dvc["git_commit"] == "c"


def test_the_gate_and_registration_tags_and_how_they_are_read_back():
    assert tags.gate_tags(True) == {"quality_gate": "passed"}
    assert tags.gate_tags(False, "rank1 too low") == {
        "quality_gate": "failed",
        "quality_gate_reason": "rank1 too low",
    }
    assert tags.failed_gate({"quality_gate": "failed"}) and not tags.failed_gate({"quality_gate": "passed"})
    assert not tags.failed_gate({})
    run = tags.registered_tags("reid", 3, passed=True)
    assert run == {"registered_model": "reid", "registered_version": "3", "quality_gate": "passed"}
    assert tags.registered_as(run) == ("reid", 3)
    assert tags.registered_as({"quality_gate": "failed"}) is None


def test_kfp_and_ablation_tags():
    assert tags.data_tags(dvc_data_hash="h", data_revision="") == {"dvc_data_hash": "h"}
    assert tags.run_tree_tags(plugin_run="p", kfp_run="k") == {
        "mlflow.parentRunId": "p",
        "kfp_mlflow_plugin_run": "p",
        "kfp_run_id": "k",
    }
    assert tags.run_tree_tags(plugin_run="", kfp_run="") == {}
    assert tags.failure_tags("", "x" * 6000) == {"failed_task": "unknown", "failure_message": "x" * 5000}
    assert tags.tag_filter(tags.KFP_RUN, "k1") == "tags.kfp_run_id = 'k1'"
    assert tags.resume_tags(4, None) == {"resumed_from_epoch": "4", "resumed_from_run": "unknown"}
    assert tags.ablation_parent_tags(None) == {"ablation": "parent", "git_commit": "unknown"}
    assert tags.ablation_cell_tags("p1", "A-sphere") == {
        "mlflow.parentRunId": "p1",
        "ablation.cell": "A-sphere",
    }
    assert tags.ablation_set_tags({"train.epochs": 2}) == {"ablation.set.train.epochs": 2}
    assert tags.promotion_tags(by="me", at="t", reason="r", previous=None)["promoted_from_version"] == "none"
