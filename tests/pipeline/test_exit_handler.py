"""Cleanup after a failed run: the ExitHandler's final task (spherereid.stages.cleanup).

kfp 2.17's local runner supports dsl.ExitHandler and PipelineTaskFinalStatus, so the last test makes the
evaluate task fail under kfp.local and reads the MLflow run state. Locally the status names the exit
handler group ("exit-handler-1"), not the task inside it that failed.
"""

from pathlib import Path

import pytest
import yaml
from fixtures.fake_kube import FakeKube, api_client
from fixtures.tiny_params import tiny_params

from pipeline.__main__ import main
from spherereid.launch.launcher import TrainJobLauncher
from spherereid.launch.trainjob import job_name
from spherereid.stages import cleanup

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/spherereid:1.2.3"
FAILED = cleanup.ChainStatus(state="FAILED", task="evaluate", message="evaluate.metric must be cosine")


def _runs(tmp_path, monkeypatch):
    """A sqlite store with three runs in spherereid-toy: ours RUNNING, another pipeline run's RUNNING, ours
    FINISHED (another dataset that completed)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("KFP_RUN_ID", raising=False)
    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("spherereid-toy", artifact_location=(tmp_path / "art").as_uri())
    ours = c.create_run(exp, tags={"kfp_run_id": "run-1"}).info.run_id
    other = c.create_run(exp, tags={"kfp_run_id": "run-2"}).info.run_id
    done = c.create_run(exp, tags={"kfp_run_id": "run-1"}).info.run_id
    c.set_terminated(done, "FINISHED")
    return c, ours, other, done


def test_a_failed_run_marks_its_running_runs_failed_and_keeps_checkpoints(tmp_path, monkeypatch):
    c, ours, other, done = _runs(tmp_path, monkeypatch)
    (tmp_path / "pvc" / "run-1" / "toy" / "checkpoints").mkdir(parents=True)
    res = cleanup.run(
        status=FAILED, kfp_run="run-1", datasets=["toy", "absent"], checkpoint_root=str(tmp_path / "pvc")
    )
    assert res == cleanup.CleanupResult(True, [ours], [], "")
    run = c.get_run(ours)
    assert run.info.status == "FAILED"
    assert (run.data.tags["failed_task"], run.data.tags["failure_message"]) == (
        "evaluate",
        "evaluate.metric must be cosine",
    )
    assert c.get_run(other).info.status == "RUNNING" and c.get_run(done).info.status == "FINISHED"
    assert (tmp_path / "pvc" / "run-1" / "toy" / "checkpoints").is_dir()  # kept: a retry resumes there


def test_remove_checkpoints_on_failure_deletes_only_that_runs_folder(tmp_path, monkeypatch):
    _runs(tmp_path, monkeypatch)
    for run in ("run-1", "run-2"):
        (tmp_path / "pvc" / run / "toy").mkdir(parents=True)
    res = cleanup.run(
        status=FAILED,
        kfp_run="run-1",
        datasets=["toy"],
        checkpoint_root=str(tmp_path / "pvc"),
        keep_checkpoints=False,
    )
    assert res.checkpoints_removed == str(tmp_path / "pvc" / "run-1")
    assert sorted(p.name for p in (tmp_path / "pvc").iterdir()) == ["run-2"]


def test_a_succeeded_run_is_left_alone(tmp_path, monkeypatch):
    c, ours, _, _ = _runs(tmp_path, monkeypatch)
    (tmp_path / "pvc" / "run-1").mkdir(parents=True)
    ok = cleanup.ChainStatus(state="SUCCEEDED")
    res = cleanup.run(
        status=ok,
        kfp_run="run-1",
        datasets=["toy"],
        checkpoint_root=str(tmp_path / "pvc"),
        keep_checkpoints=False,
    )
    assert res == cleanup.CleanupResult(False)
    assert c.get_run(ours).info.status == "RUNNING" and (tmp_path / "pvc" / "run-1").is_dir()


def test_the_trainjob_of_the_failed_run_is_deleted():
    name = job_name("run-1", "toy")
    with FakeKube() as kube:
        kube.jobs[name] = {"metadata": {"name": name, "namespace": "team-a"}}
        launcher = TrainJobLauncher(api_client(kube.url), "team-a")
        assert cleanup.delete_trainjob("run-1", "toy", launcher=launcher) == name
        assert cleanup.delete_trainjob("run-1", "toy", launcher=launcher) == name  # already gone: fine
    assert kube.jobs == {}
    assert [r for r in kube.requests if r[0] == "DELETE"] == [
        ("DELETE", f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs/{name}")
    ] * 2


def test_the_exit_handler_wraps_the_loop_and_its_task_gets_the_final_status(tmp_path):
    out = tmp_path / "p.yaml"
    argv = [
        "compile",
        "--image",
        IMAGE,
        "--out",
        str(out),
        "--params",
        str(ROOT / "params.yaml"),
        "--checkpoint-pvc",
        "ckpt",
        "--nodes",
        "2",
        "--gpus",
        "8",
        "--remove-checkpoints-on-failure",
    ]
    assert main(argv) == 0
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    root = spec["root"]["dag"]["tasks"]
    assert sorted(root) == ["cleanup", "exit-handler-1"]
    # the per-dataset chains and the cross-dataset matrix after them
    assert sorted(spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]) == [
        "cross-dataset-matrix",
        "for-loop-2",
    ]
    task = root["cleanup"]
    assert task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert task["dependentTasks"] == ["exit-handler-1"]
    params = task["inputs"]["parameters"]
    assert params["status"] == {"taskFinalStatus": {"producerTask": "exit-handler-1"}}
    assert params["kfp_run"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"
    assert params["keep_checkpoints"]["runtimeValue"]["constant"] is False
    assert params["multi_node"]["runtimeValue"]["constant"] is True
    assert params["checkpoint_root"]["runtimeValue"]["constant"] == "/checkpoints"
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-cleanup"]
    assert k8s["pvcMount"][0]["mountPath"] == "/checkpoints"


@pytest.mark.slow
def test_a_task_made_to_fail_leaves_its_mlflow_run_failed(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from pipeline.run_local import run_local
    from pipeline.settings import PipelineError
    from spherereid.config import load_params

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("KFP_RUN_ID", "local-failing-run")
    params = tiny_params(tmp_path)
    evaluate = {**vars(load_params(params).evaluate), "metric": "hamming"}  # evaluate fails on it
    with pytest.raises(PipelineError, match="local pipeline run failed"):
        run_local(out_dir=tmp_path / "out", params_path=params, overrides={"evaluate": evaluate})
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("spherereid-synthetic").experiment_id])
    assert run.info.status == "FAILED"  # not RUNNING
    assert run.data.tags["kfp_run_id"] == "local-failing-run"
    assert run.data.tags["failed_task"] == "exit-handler-1"  # kfp.local names the group, not the task
