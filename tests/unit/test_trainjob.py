"""The multi-node TrainJob manifest: contents, round trip through kubeflow-trainer-api, names, settings."""

import copy

import pytest
from kubeflow_trainer_api.models import TrainerV1alpha1TrainJob

from spherereid.config import SamplerConfig, TrainConfig, load_params
from spherereid.launch.scaleout import ScaleOut, trainjob_for, write_train_params
from spherereid.launch.torchrun import LaunchError, torchrun_argv
from spherereid.launch.trainjob import TrainJobSpec, build_trainjob, job_name, validate_trainjob

RUN_ID = "0b6a8495-3d5d-4f2e-9c1a-5f2a9c1e7d20"


def _scale(**changes) -> ScaleOut:
    values = dict(
        nodes=2,
        gpus_per_node=8,
        runtime="torch-distributed",
        image="registry.example.com/spherereid:0.1.0",
        node_selector={"nvidia.com/gpu.present": "true"},
        toleration_keys=["nvidia.com/gpu"],
        secret_name="spherereid-credentials",
        secret_keys=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        optional_secret_keys=["MLFLOW_TRACKING_PASSWORD"],
        env={"MLFLOW_TRACKING_URI": "http://mlflow:5000"},
        pvc_name="reid-rwx",
        timeout_s=3600.0,  # a float, as a KFP struct delivers it
    )
    values.update(changes)
    return ScaleOut.from_dict(values)


def _manifest(**changes) -> dict:
    args = [
        "--params",
        "/checkpoints/r/p.yaml",
        "--prepared",
        "/checkpoints/r/in",
        "--out",
        "/checkpoints/r/o",
    ]
    return trainjob_for(_scale(**changes), run_id=RUN_ID, dataset="market1501", namespace="team-a", args=args)


def test_the_job_runs_our_image_and_entrypoint_on_the_torch_runtime():
    job = _manifest()
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["labels"]["spherereid/run-id"] == RUN_ID
    spec = job["spec"]
    assert spec["runtimeRef"]["name"] == "torch-distributed"
    assert spec["activeDeadlineSeconds"] == 3600
    trainer = spec["trainer"]
    assert trainer["image"] == "registry.example.com/spherereid:0.1.0"
    assert trainer["command"][:3] == ["torchrun", "-m", "spherereid.stages.train"]
    assert trainer["command"][3:] == [
        "--params",
        "/checkpoints/r/p.yaml",
        "--prepared",
        "/checkpoints/r/in",
        "--out",
        "/checkpoints/r/o",
    ]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (2, 8)
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "8"


def test_the_job_carries_placement_secrets_pvc_and_shm():
    job = _manifest()
    env = {e["name"]: e for e in job["spec"]["trainer"]["env"]}
    assert env["MLFLOW_TRACKING_URI"] == {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"}
    ref = env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "spherereid-credentials", "key": "AWS_SECRET_ACCESS_KEY", "optional": False}
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert all("value" not in env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
    (patch,) = job["spec"]["runtimePatches"]
    (node,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert node["name"] == "node"
    pod = node["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["checkpoints"]["persistentVolumeClaim"] == {"claimName": "reid-rwx"}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {"/checkpoints": "checkpoints", "/dev/shm": "dshm"}


def test_the_manifest_round_trips_through_the_trainer_api_models_unchanged():
    job = _manifest()
    assert TrainerV1alpha1TrainJob.from_dict(job).to_dict() == job
    assert validate_trainjob(job) is job


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda j: j["spec"]["trainer"].__setitem__("numNodes", "two"), "numNodes"),
        (lambda j: j["spec"].pop("runtimeRef"), "runtimeRef"),
        (lambda j: j["spec"].__setitem__("podSpecOverrides", []), "podSpecOverrides"),
        (lambda j: j["spec"]["trainer"].__setitem__("numProcPerNode", "auto"), "numProcPerNode"),
    ],
)
def test_a_wrong_missing_or_stale_field_is_rejected(mutate, message):
    job = copy.deepcopy(_manifest())
    mutate(job)
    with pytest.raises(LaunchError, match=message):
        validate_trainjob(job)


def test_the_name_is_stable_per_run_and_dataset_and_a_valid_dns_label():
    a = job_name(RUN_ID, "Market-1501 (detected)")
    assert a == job_name(RUN_ID, "Market-1501 (detected)"), "a retried task finds its own job"
    assert a != job_name(RUN_ID, "dukemtmc") and a != job_name("another-run", "Market-1501 (detected)")
    assert len(a) <= 40 and a[0].isalpha() and all(c.islower() or c.isdigit() or c == "-" for c in a)
    with pytest.raises(LaunchError, match="run id"):
        job_name("", "market1501")


def test_settings_errors_are_one_line_and_name_the_fix():
    with pytest.raises(LaunchError, match="--checkpoint-pvc"):
        _scale(pvc_name="")
    with pytest.raises(LaunchError, match="gpus_per_node must be a whole number"):
        _scale(gpus_per_node=1.5)
    with pytest.raises(LaunchError, match="unknown scale-out setting 'gpus'"):
        ScaleOut.from_dict({"gpus": 2})
    with pytest.raises(LaunchError, match="runtime"):
        build_trainjob(
            TrainJobSpec(name="x", namespace="n", image="i", runtime="", nodes=2, gpus_per_node=1, args=())
        )
    assert ScaleOut.from_dict(_scale().to_dict()) == _scale()


def test_single_node_torchrun_command():
    argv = torchrun_argv(4, "spherereid.stages.train", ["--out", "o"], python="py")
    assert argv == [
        "py",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=4",
        "-m",
        "spherereid.stages.train",
        "--out",
        "o",
    ]
    with pytest.raises(LaunchError, match="gpus_per_node"):
        torchrun_argv(0, "m", [])


def test_the_written_params_file_loads_with_the_given_sections(tmp_path):
    sections = {"sampler": SamplerConfig(p=8, k=4, batch_size=32), "train": TrainConfig(epochs=3, seed=7)}
    params = load_params(write_train_params(tmp_path / "p.yaml", sections, "market1501"))
    assert params.sampler == sections["sampler"] and params.train == sections["train"]
    assert params.datasets == ("market1501",)
