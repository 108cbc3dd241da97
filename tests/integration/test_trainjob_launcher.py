"""The TrainJob launcher against a fake Kubernetes API server on 127.0.0.1 (real HTTP, real client)."""

import io

import numpy as np
import pytest
import yaml
from fixtures.fake_kube import FakeKube, api_client

from spherereid.config import SamplerConfig, TrainConfig
from spherereid.launch.launcher import TrainJobLauncher
from spherereid.launch.scaleout import PARAMS_FILE, ScaleOut, train_scaled
from spherereid.launch.torchrun import LaunchError
from spherereid.launch.trainjob import job_name

RUN_ID = "7d20c1e7-9c1a-4f2e-3d5d-0b6a84955f2a"
JOBS = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs"


def _manifest(name: str = "reid-market-0123456789") -> dict:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": "team-a", "labels": {}},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, "trainer": {"numNodes": 2}},
    }


def _launcher(kube: FakeKube) -> tuple[TrainJobLauncher, io.StringIO]:
    out = io.StringIO()
    return TrainJobLauncher(api_client(kube.url), "team-a", out=out), out


def test_create_run_succeed_stream_logs_and_delete():
    log = "rank 0 of 16 on cuda:0 (nccl)\nepoch 1/2 loss 3.1\nepoch 2/2 loss 2.7\n"
    with FakeKube(outcome="Complete", steps=2, log_text=log) as kube:
        launcher, out = _launcher(kube)
        job = launcher.run(_manifest(), timeout_s=30, poll_s=0.05, drain_s=5)
        assert job["status"]["conditions"][-1]["type"] == "Complete"
        assert out.getvalue() == log, "the first node's log is streamed"
        assert kube.requests.count(("POST", JOBS)) == 1
        assert ("DELETE", f"{JOBS}/reid-market-0123456789") in kube.requests
        assert kube.jobs == {}, "the job is deleted when done"


def test_a_failed_job_fails_the_task_with_the_jobs_message_and_is_deleted():
    message = "jobset failed: node-1 exited with code 2: error: loss became nan at epoch 3, step 7"
    with FakeKube(outcome="Failed", steps=1, fail_message=message, log_text="boom\n") as kube:
        launcher, _ = _launcher(kube)
        with pytest.raises(
            LaunchError, match="failed: jobset failed: node-1 exited with code 2: error: loss"
        ):
            launcher.run(_manifest(), timeout_s=30, poll_s=0.05, drain_s=5)
        assert kube.jobs == {}


def test_a_retried_task_follows_its_existing_job_instead_of_starting_another():
    with FakeKube(outcome="Complete", steps=3) as kube:
        launcher, _ = _launcher(kube)
        first, created = launcher.create_or_find(_manifest())
        assert created
        # the first attempt's pod died here; the retry builds the same manifest and finds the job
        retry, _ = _launcher(kube)
        job = retry.run(_manifest(), timeout_s=30, poll_s=0.05, drain_s=5)
        assert job["metadata"]["name"] == first["metadata"]["name"]
        assert kube.requests.count(("POST", JOBS)) == 1, "no second job"
        assert kube.jobs == {}


def test_a_job_that_does_not_finish_in_time_is_an_error_and_is_deleted():
    with FakeKube(outcome="Complete", steps=10**6) as kube:
        launcher, _ = _launcher(kube)
        with pytest.raises(LaunchError, match="did not finish within 0 s"):
            launcher.run(_manifest(), timeout_s=0.2, poll_s=0.05, drain_s=0.5)
        assert kube.jobs == {}


def test_multi_node_train_shares_the_prepared_set_and_submits_the_stage_command(tmp_path):
    """nodes > 1: the params and the prepared set go to the shared volume; the job runs the stage."""
    mount = tmp_path / "checkpoints"
    prepared = tmp_path / "in" / "prepared"
    prepared.mkdir(parents=True)
    np.save(prepared / "train_images.npy", np.zeros((2, 4, 2, 3), np.uint8))
    out = mount / RUN_ID / "market1501"
    scale = ScaleOut(nodes=2, gpus_per_node=4, image="img:1.0", pvc_name="rwx", mount_path=str(mount))
    sections = {"sampler": SamplerConfig(p=8, k=4, batch_size=32), "train": TrainConfig(epochs=2)}
    with FakeKube(outcome="Complete", steps=1) as kube:
        launcher, _ = _launcher(kube)
        submitted = []
        real_create = launcher.custom.create_namespaced_custom_object
        launcher.custom.create_namespaced_custom_object = lambda *a, **k: (
            submitted.append(a[-1]) or real_create(*a, **k)
        )
        train_scaled(
            scale,
            prepared_dir=prepared,
            out_dir=out,
            sections=sections,
            dataset="market1501",
            run_id=RUN_ID,
            launcher=launcher,
            poll_s=0.05,
        )
    (job,) = submitted
    assert job["metadata"]["name"] == job_name(RUN_ID, "market1501")
    command = job["spec"]["trainer"]["command"]
    shared = out.with_name("market1501-prepared")
    assert command[command.index("--prepared") + 1] == str(shared)
    assert command[command.index("--out") + 1] == str(out)
    assert (shared / "train_images.npy").is_file(), "the pods read the prepared set from the shared volume"
    params = yaml.safe_load((out / PARAMS_FILE).read_text())
    assert params["sampler"] == {"p": 8, "k": 4, "batch_size": 32, "type": "balanced"}
    assert params["train"]["epochs"] == 2
    with pytest.raises(LaunchError, match="not on the shared volume"):
        train_scaled(
            scale,
            prepared_dir=prepared,
            out_dir=tmp_path / "elsewhere",
            sections=sections,
            dataset="market1501",
            run_id=RUN_ID,
            launcher=launcher,
        )
