"""The compiled pipeline for one node with 4 GPUs and for 2 nodes with 8 GPUs each."""

import json
from pathlib import Path

import pytest
import yaml

from pipeline.__main__ import main
from pipeline.compile import compile_pipeline
from pipeline.settings import ClusterSettings, PipelineError
from spherereid.launch.scaleout import ScaleOut, trainjob_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/team/spherereid:0.2.0-9c1e7d2"


def _compile(tmp_path: Path, settings: ClusterSettings):
    out = compile_pipeline(
        image=IMAGE, out=tmp_path / "p.yaml", params_path=ROOT / "params.yaml", settings=settings
    )
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    train_task = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    scale = json.loads(train_task["scale"]["runtimeValue"]["constant"])
    return resources, k8s, scale, train_task["run_id"]["runtimeValue"]["constant"]


def test_one_node_four_gpus_asks_for_them_mounts_shm_and_runs_torchrun(tmp_path):
    resources, k8s, scale, run_id = _compile(tmp_path, ClusterSettings(gpus_per_node=4))
    assert (resources["accelerator"]["resourceType"], resources["accelerator"]["resourceCount"]) == (
        "nvidia.com/gpu",
        "4",
    )
    assert resources["resourceCpuRequest"] == "4" and resources["resourceMemoryLimit"] == "32G"
    assert k8s["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["emptyDirMounts"] == [
        {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "8Gi", "volumeName": "dshm"}
    ]
    plan = ScaleOut.from_dict(scale)
    assert (plan.nodes, plan.gpus_per_node, plan.processes) == (1, 4, 4)
    assert run_id == "", "no run id in the cache key of a single-node train"


def test_one_gpu_mounts_no_shm(tmp_path):
    resources, k8s, scale, _ = _compile(tmp_path, ClusterSettings())
    assert resources["accelerator"]["resourceCount"] == "1"
    assert "emptyDirMounts" not in k8s
    assert ScaleOut.from_dict(scale).processes == 1


def test_two_nodes_of_eight_gpus_submit_a_trainjob_from_a_small_task(tmp_path):
    settings = ClusterSettings(
        gpus_per_node=8, nodes=2, checkpoint_pvc="reid-rwx", trainjob_runtime="torch-nccl"
    )
    resources, k8s, scale, run_id = _compile(tmp_path, settings)
    assert "accelerator" not in resources, "the launcher task needs no GPU: the TrainJob asks for them"
    assert resources["resourceCpuRequest"] == "1" and "nodeSelector" not in k8s
    assert k8s["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "reid-rwx"
    assert run_id == "{{$.pipeline_job_uuid}}", "the job is named from the KFP run id"
    plan = ScaleOut.from_dict(scale)
    assert (plan.nodes, plan.gpus_per_node, plan.processes) == (2, 8, 16)
    assert (plan.image, plan.runtime, plan.pvc_name, plan.mount_path) == (
        IMAGE,
        "torch-nccl",
        "reid-rwx",
        "/checkpoints",
    )
    # the compiled plan builds a TrainJob the Trainer API models accept, with the cluster's placement
    job = trainjob_for(
        plan, run_id="r-1", dataset="market1501", namespace="ns", args=["--out", "/checkpoints/x"]
    )
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod = pod["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job["spec"]["trainer"]["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"
    plain = {e["name"]: e["value"] for e in job["spec"]["trainer"]["env"] if "value" in e}
    assert plain["SPHEREREID_REQUIRE_CUDA"] == "1", "a GPU pod never falls back to the CPU"
    secrets = {e["name"] for e in job["spec"]["trainer"]["env"] if "valueFrom" in e}
    assert secrets == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    }


def test_several_nodes_without_a_shared_volume_is_refused(tmp_path, capsys):
    with pytest.raises(PipelineError, match="--checkpoint-pvc"):
        ClusterSettings(nodes=2, gpus_per_node=8)
    argv = [
        "compile",
        "--image",
        IMAGE,
        "--out",
        str(tmp_path / "p.yaml"),
        "--params",
        str(ROOT / "params.yaml"),
        "--nodes",
        "2",
        "--gpus",
        "8",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--checkpoint-pvc" in err


def test_cli_flags_reach_the_compiled_plan(tmp_path):
    out = tmp_path / "p.yaml"
    argv = [
        "compile",
        "--image",
        IMAGE,
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
        "--nodes",
        "3",
        "--gpus",
        "2",
        "--checkpoint-pvc",
        "rwx",
        "--trainjob-runtime",
        "torch-custom",
    ]
    assert main(argv) == 0
    spec = next(yaml.safe_load_all(out.read_text()))
    params = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]["train"]["inputs"]["parameters"]
    plan = json.loads(params["scale"]["runtimeValue"]["constant"])
    assert (plan["nodes"], plan["gpus_per_node"], plan["runtime"]) == (3, 2, "torch-custom")
