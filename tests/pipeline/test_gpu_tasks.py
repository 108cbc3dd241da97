"""GPU tasks in the compiled pipeline: train requires CUDA when given a GPU; evaluate can ask for one."""

from pathlib import Path

import yaml

from pipeline.compile import compile_pipeline
from pipeline.settings import LOCAL_SETTINGS, REQUIRE_CUDA_ENV, ClusterSettings

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com:5000/team/spherereid:0.1.0-3f2a9c1"


def _compile(tmp_path, settings):
    out = compile_pipeline(
        image=IMAGE, out=tmp_path / "p.yaml", params_path=ROOT / "params.yaml", settings=settings
    )
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    executors = spec["deploymentSpec"]["executors"]
    return executors, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _env(executor):
    return {e["name"]: e.get("value") for e in executor["container"].get("env", [])}


def test_train_on_a_gpu_requires_cuda_and_evaluate_stays_on_the_cpu_by_default(tmp_path):
    executors, k8s = _compile(tmp_path, ClusterSettings())
    assert _env(executors["exec-train"])[REQUIRE_CUDA_ENV] == "1"
    evaluate = executors["exec-evaluate"]
    assert REQUIRE_CUDA_ENV not in _env(evaluate)
    assert "accelerator" not in evaluate["container"]["resources"]
    assert "nodeSelector" not in k8s.get("exec-evaluate", {})


def test_evaluate_gpus_places_evaluate_on_a_gpu_node(tmp_path):
    executors, k8s = _compile(tmp_path, ClusterSettings(evaluate_gpus=1))
    res = executors["exec-evaluate"]["container"]["resources"]
    assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert res["accelerator"]["resourceCount"] == "1"
    assert _env(executors["exec-evaluate"])[REQUIRE_CUDA_ENV] == "1"
    assert k8s["exec-evaluate"]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in k8s["exec-evaluate"][
        "tolerations"
    ]


def test_cpu_only_cluster_and_local_runs_do_not_require_cuda(tmp_path):
    executors, _ = _compile(tmp_path, ClusterSettings(gpus_per_node=0))
    assert REQUIRE_CUDA_ENV not in _env(executors["exec-train"])
    assert LOCAL_SETTINGS.require_cuda is False
