"""Cluster basics in the compiled YAML: image pull secrets, pod deadlines, the run's TTL and deadline,
display names, KFP_RUN_ID from the pod label, the gate branches and the exit handler."""

from pathlib import Path

import pytest
import yaml

from pipeline.__main__ import main
from pipeline.spherereid_pipeline import DISPLAY_NAMES, RUN_ID_FIELD

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/spherereid:1.2.3"
EXECUTORS = (
    *("preprocess", "train", "evaluate", "register", "gate-report", "cleanup"),
    *("cross-evaluate", "matrix"),  # the cross-dataset matrix
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(pipeline spec, kubernetes executors) compiled through the CLI with every cluster flag."""
    out = tmp_path_factory.mktemp("c") / "p.yaml"
    argv = [
        "compile",
        "--image",
        IMAGE,
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
        "--image-pull-secret",
        "regcred",
        "--image-pull-secret",
        "mirror",
        "--train-timeout",
        "90000",
        "--task-timeout",
        "1800",
        "--ttl",
        "86400",
        "--deadline",
        "172800",
        "--checkpoint-pvc",
        "ckpt",
    ]
    assert main(argv) == 0
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    return spec, platform


def _executors(platform):
    return platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_every_task_pulls_with_the_given_secrets(compiled):
    _, platform = compiled
    k8s = _executors(platform)
    for name in EXECUTORS:
        assert [s["secretName"] for s in k8s[f"exec-{name}"]["imagePullSecret"]] == ["regcred", "mirror"]


def test_pod_deadlines_train_longer_than_the_rest(compiled):
    _, platform = compiled
    k8s = _executors(platform)
    assert k8s["exec-train"]["activeDeadlineSeconds"] == "90000"
    for name in ("preprocess", "evaluate", "register", "gate-report", "cleanup", "cross-evaluate", "matrix"):
        assert k8s[f"exec-{name}"]["activeDeadlineSeconds"] == "1800"


def test_run_ttl_and_active_deadline(compiled):
    _, platform = compiled
    config = platform["platforms"]["kubernetes"]["pipelineConfig"]
    assert config == {"activeDeadlineSeconds": 172800, "resourceTtlOnCompletion": 86400}


def test_display_names_and_the_run_id_label_as_env(compiled):
    spec, platform = compiled
    names = {}
    for component in spec["components"].values():
        for task_name, task in component.get("dag", {}).get("tasks", {}).items():
            names[task_name] = task["taskInfo"]["name"]
    for task_name, task in spec["root"]["dag"]["tasks"].items():
        names[task_name] = task["taskInfo"]["name"]
    assert names["train"] == DISPLAY_NAMES["train"] == "Train model"
    assert names["gate-report"] == "Quality gate refused: report"
    assert {names[t] for t in ("preprocess", "evaluate", "register", "cleanup")} == {
        DISPLAY_NAMES[r] for r in ("preprocess", "evaluate", "register", "cleanup")
    }
    assert names["cross-dataset-matrix"] == DISPLAY_NAMES["cross_matrix"] == "Cross-dataset evaluation"
    assert names["cross-evaluate"] == DISPLAY_NAMES["cross_evaluate"]
    assert names["matrix"] == DISPLAY_NAMES["matrix"]
    for name in EXECUTORS:
        (env,) = _executors(platform)[f"exec-{name}"]["fieldPathAsEnv"]
        assert env == {"name": "KFP_RUN_ID", "fieldPath": RUN_ID_FIELD}


def test_defaults_set_a_ttl_and_deadline_but_no_pull_secret(tmp_path):
    out = tmp_path / "p.yaml"
    assert main(["compile", "--image", IMAGE, "--out", str(out), "--params", str(ROOT / "params.yaml")]) == 0
    _, platform = list(yaml.safe_load_all(out.read_text()))
    assert platform["platforms"]["kubernetes"]["pipelineConfig"] == {
        "activeDeadlineSeconds": 8 * 24 * 3600,
        "resourceTtlOnCompletion": 14 * 24 * 3600,
    }
    assert all("imagePullSecret" not in e for e in _executors(platform).values())


def test_a_negative_timeout_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = ["compile", "--image", IMAGE, "--out", str(out), "--task-timeout", "-1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task_timeout_s must be >= 0" in err and not out.exists()
