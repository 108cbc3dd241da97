"""The compiled pipeline YAML: image, GPU, placement, secrets, retries, caching, fan-out, defaults."""

import re
from pathlib import Path

import pytest
import yaml

from pipeline.__main__ import main
from pipeline.compile import check_image, compile_pipeline
from pipeline.settings import ClusterSettings, PipelineError

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com:5000/team/spherereid:0.1.0-3f2a9c1"
# Credential-looking values present in the compiling process's environment: none may reach the YAML.
FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYID0123456",
    "AWS_SECRET_ACCESS_KEY": "fake-secret-Zq8xW3vB7nM1kL5pR9tY2",
    "MLFLOW_TRACKING_PASSWORD": "fake-mlflow-password-77",
}
STAGES = ("preprocess", "train", "evaluate", "register")
TASKS = (*STAGES, "gate-report", "cleanup", "cross-evaluate", "matrix")  # + refusal, exit handler, matrix


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """(raw text, pipeline spec, kubernetes platform spec) of the default compile."""
    mp = pytest.MonkeyPatch()
    for key, value in FAKE_SECRETS.items():
        mp.setenv(key, value)
    try:
        out = compile_pipeline(
            image=IMAGE, out=tmp_path_factory.mktemp("c") / "p.yaml", params_path=ROOT / "params.yaml"
        )
    finally:
        mp.undo()
    text = out.read_text()
    spec, platform = list(yaml.safe_load_all(text))
    return text, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _loop(spec):
    """The tasks of the per-dataset loop body, those inside its dsl.If/Else branches included."""
    return flat_tasks(spec, "comp-for-loop-2")


def flat_tasks(spec, component):
    """name -> task spec of every task in `component`'s DAG and in the sub-DAGs it holds (not themselves)."""
    out = {}
    for name, task in spec["components"][component]["dag"]["tasks"].items():
        inner = task["componentRef"]["name"]
        if "dag" in spec["components"][inner]:
            out.update(flat_tasks(spec, inner))
        else:
            out[name] = task
    return out


def test_every_stage_runs_on_the_given_image(compiled):
    _, spec, _ = compiled
    executors = spec["deploymentSpec"]["executors"]
    assert sorted(executors) == sorted(f"exec-{s}" for s in TASKS)
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}


def test_train_asks_for_one_gpu_cpu_and_memory(compiled):
    _, spec, _ = compiled
    res = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert res["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert res["accelerator"]["resourceCount"] == "1"
    assert res["resourceCpuRequest"] == "4"
    assert res["resourceMemoryRequest"] == "16G" and res["resourceMemoryLimit"] == "32G"
    for stage in ("preprocess", "evaluate", "register"):
        other = spec["deploymentSpec"]["executors"][f"exec-{stage}"]["container"]["resources"]
        assert "accelerator" not in other


def test_train_is_placed_on_gpu_nodes(compiled):
    _, _, k8s = compiled
    assert k8s["exec-train"]["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert k8s["exec-train"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert all("nodeSelector" not in k8s[f"exec-{s}"] for s in ("preprocess", "evaluate", "register"))


def test_credentials_come_from_the_secret_in_every_task(compiled):
    _, _, k8s = compiled
    for stage in STAGES:
        refs = k8s[f"exec-{stage}"]["secretAsEnv"]
        assert {r["secretName"] for r in refs} == {"spherereid-credentials"}
        mapped = {m["envVar"]: (m["secretKey"], r["optional"]) for r in refs for m in r["keyToEnv"]}
        assert mapped == {
            "AWS_ACCESS_KEY_ID": ("AWS_ACCESS_KEY_ID", False),
            "AWS_SECRET_ACCESS_KEY": ("AWS_SECRET_ACCESS_KEY", False),
            "MLFLOW_TRACKING_USERNAME": ("MLFLOW_TRACKING_USERNAME", True),
            "MLFLOW_TRACKING_PASSWORD": ("MLFLOW_TRACKING_PASSWORD", True),
        }


def test_no_credential_literal_anywhere(compiled):
    text, spec, _ = compiled
    for value in FAKE_SECRETS.values():
        assert value not in text
    assert re.search(r"AKIA[0-9A-Z]{16}", text) is None
    for executor in spec["deploymentSpec"]["executors"].values():
        plain = {e["name"] for e in executor["container"].get("env", [])}
        assert not plain & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"}
        assert executor["container"]["env"] and all("value" in e for e in executor["container"]["env"])


def test_train_retries_with_backoff(compiled):
    _, spec, _ = compiled
    tasks = _loop(spec)
    assert tasks["train"]["retryPolicy"] == {
        "maxRetryCount": 3,
        "backoffDuration": "60s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
    }
    assert all("retryPolicy" not in tasks[s] for s in ("preprocess", "evaluate", "register"))


def test_caching_on_for_preprocess_off_for_register(compiled):
    _, spec, _ = compiled
    tasks = _loop(spec)
    assert tasks["preprocess"]["cachingOptions"] == {"enableCache": True}
    assert tasks["register"]["cachingOptions"].get("enableCache", False) is False


def test_fan_out_over_datasets_and_stage_order(compiled):
    _, spec, _ = compiled
    loop_task = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]["for-loop-2"]
    assert loop_task["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--datasets"
    tasks = _loop(spec)
    assert sorted(tasks) == sorted(["preprocess", "train", "evaluate", "register", "gate-report"])
    assert tasks["preprocess"]["inputs"]["parameters"]["dataset"] == {
        "componentInputParameter": "pipelinechannel--datasets-loop-item"
    }
    assert tasks["train"]["dependentTasks"] == ["preprocess"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["preprocess", "train"]
    branches = spec["components"]["comp-for-loop-2"]["dag"]["tasks"]["condition-branches-3"]
    assert sorted(branches["dependentTasks"]) == ["evaluate", "preprocess", "train"]  # register, refusal


def test_parameter_defaults_are_params_yaml(compiled):
    _, spec, _ = compiled
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["datasets"]["defaultValue"] == params["datasets"]
    sections = [k for k in params if k != "datasets"]
    assert len(sections) == 11
    for section in sections:
        assert inputs[section]["parameterType"] == "STRUCT"
        default = inputs[section]["defaultValue"]
        assert sorted(default) == sorted(params[section]), section
        for key, value in params[section].items():
            assert default[key] == value, f"{section}.{key}"  # 30.0 == 30: the Struct keeps the number
    assert inputs["data_repo"]["defaultValue"] == "" and inputs["raw_root"]["defaultValue"] == ""


def test_no_checkpoint_pvc_by_default_and_a_stable_dir_with_one(compiled, tmp_path):
    _, spec, k8s = compiled
    assert _loop(spec)["train"]["inputs"]["parameters"]["checkpoint_dir"] == {
        "runtimeValue": {"constant": ""}
    }
    assert "pvcMount" not in k8s["exec-train"]
    settings = ClusterSettings(checkpoint_pvc="reid-ckpt", accelerator_type="amd.com/gpu", gpus_per_node=2)
    out = compile_pipeline(
        image=IMAGE, out=tmp_path / "p.yaml", params_path=ROOT / "params.yaml", settings=settings
    )
    spec2, platform = list(yaml.safe_load_all(out.read_text()))
    train_k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert train_k8s["pvcMount"][0]["mountPath"] == "/checkpoints"
    assert train_k8s["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "reid-ckpt"
    ckpt = _loop(spec2)["train"]["inputs"]["parameters"]["checkpoint_dir"]["runtimeValue"]["constant"]
    # stable across retries of one run (the run id), distinct per dataset (the loop item)
    item = "{{$.inputs.parameters['pipelinechannel--datasets-loop-item']}}"
    assert ckpt == "/checkpoints/{{$.pipeline_job_uuid}}/" + item
    res = spec2["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"]
    assert (res["resourceType"], res["resourceCount"]) == ("amd.com/gpu", "2")


@pytest.mark.parametrize(
    "ref",
    [
        "spherereid:1.0.0",
        "localhost:5000/spherereid:2026.11.24",
        "ghcr.io/org/spherereid@sha256:" + "a" * 64,
        "ghcr.io/org/spherereid:1.0@sha256:" + "0" * 64,
    ],
)
def test_immutable_references_are_accepted(ref):
    assert check_image(ref) == ref


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("spherereid:latest", "mutable tag ':latest'"),
        ("ghcr.io/org/spherereid:main", "mutable tag ':main'"),
        ("spherereid", "no tag or digest"),
        ("localhost:5000/spherereid", "no tag or digest"),
        ("spherereid@sha256:abc", "malformed digest"),
        ("spherereid-image-unset:set-SPHEREREID_IMAGE", "placeholder"),
    ],
)
def test_mutable_or_missing_references_are_refused(ref, why):
    with pytest.raises(PipelineError, match=re.escape(why)):
        check_image(ref)


@pytest.mark.parametrize("ref", ["spherereid:latest", "registry.example.com/spherereid"])
def test_compile_cli_refuses_with_one_line_and_exit_2(ref, tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert main(["compile", "--image", ref, "--out", str(out), "--params", str(ROOT / "params.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: image ") and ref in err
    assert not out.exists()


def test_compile_cli_takes_the_image_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPHEREREID_IMAGE", "spherereid:9.9.9")
    out = tmp_path / "p.yaml"
    assert main(["compile", "--out", str(out), "--params", str(ROOT / "params.yaml")]) == 0
    spec = next(yaml.safe_load_all(out.read_text()))
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        "spherereid:9.9.9"
    }
    monkeypatch.delenv("SPHEREREID_IMAGE")
    assert main(["compile", "--out", str(out), "--params", str(ROOT / "params.yaml")]) == 2
    assert "no image given" in capsys.readouterr().err


def test_compile_cli_bad_params_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("datasets: [synthetic]\ntrain: {epochs: 0}\n")
    assert main(["compile", "--image", IMAGE, "--out", str(tmp_path / "p.yaml"), "--params", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err


def test_compile_cli_cluster_flags(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    argv = [
        "compile",
        "--image",
        IMAGE,
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
        "--gpus",
        "0",
        "--env",
        "MLFLOW_TRACKING_URI=http://mlflow.team:5000",
        "--secret",
        "team-creds",
        "--checkpoint-pvc",
        "ckpt",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == f"compiled {out} for image {IMAGE}"
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    train = spec["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert "accelerator" not in train["resources"]  # CPU-only cluster: no GPU, no GPU-node placement
    assert "nodeSelector" not in k8s["exec-train"] and "tolerations" not in k8s["exec-train"]
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.team:5000"} in train["env"]
    assert {r["secretName"] for s in STAGES for r in k8s[f"exec-{s}"]["secretAsEnv"]} == {"team-creds"}
    assert k8s["exec-train"]["pvcMount"][0]["pvcNameParameter"]["runtimeValue"]["constant"] == "ckpt"


def test_no_task_mounts_a_dev_shm_that_nothing_uses(compiled):
    """Training reads memory-mapped arrays in-process (no DataLoader workers): no /dev/shm volume."""
    _, _, k8s = compiled
    assert all(
        "emptyDirMounts" not in k8s[f"exec-{s}"] for s in ("preprocess", "train", "evaluate", "register")
    )
