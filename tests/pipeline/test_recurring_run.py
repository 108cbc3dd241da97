"""`python -m pipeline schedule`: a recurring run on a local stand-in of the KFP v2beta1 API."""

from pathlib import Path

import pytest
from fixtures.fake_kfp_api import FakeKfpApi

from pipeline.__main__ import main
from pipeline.schedule import kfp_cron
from pipeline.settings import PipelineError

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/spherereid:1.2.3"


def test_a_unix_cron_gets_kfps_seconds_field_and_a_bad_one_is_refused():
    assert kfp_cron("0 2 * * *") == "0 0 2 * * *"
    assert kfp_cron("30 0 2 * * 1-5") == "30 0 2 * * 1-5"
    with pytest.raises(PipelineError, match="expected 5 fields"):
        kfp_cron("nightly")


def _nightly_argv(host: str, *extra: str) -> list[str]:
    """`python -m pipeline schedule` arguments for a 2 a.m. run of params.yaml against `host`."""
    return [
        "schedule",
        "--cron",
        "0 2 * * *",
        "--image",
        IMAGE,
        "--host",
        host,
        "--params",
        str(ROOT / "params.yaml"),
        "--data-repo",
        "https://git.example/data.git",
        *extra,
    ]


def test_schedule_creates_one_recurring_run_one_at_a_time_without_catch_up(capsys):
    with FakeKfpApi() as api:
        argv = _nightly_argv(api.url, "--data-rev", "v3", "--image-pull-secret", "regcred")
        assert main(argv) == 0
    (job,) = api.recurring_runs
    assert job["display_name"] == "spherereid-nightly"
    assert job["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert int(job["max_concurrency"]) == 1
    assert job["no_catchup"] is True and job["mode"] == "ENABLE"
    (exp,) = api.experiments.values()
    assert exp["display_name"] == "spherereid" and job["experiment_id"] == exp["experiment_id"]
    assert job["runtime_config"]["parameters"]["data_rev"] == "v3"
    # the compiled package went with it: the pipeline spec and its Kubernetes settings (pull secret included)
    package = job["pipeline_spec"]
    assert package["pipeline_spec"]["pipelineInfo"]["name"] == "spherereid"
    k8s = package["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert [s["secretName"] for s in k8s["exec-train"]["imagePullSecret"]] == ["regcred"]
    out = capsys.readouterr().out
    last = out.splitlines()[-1]  # kfp.Client prints the experiment link before it
    assert last.startswith(f"recurring run {job['recurring_run_id']} (spherereid-nightly") and api.url in last


def test_schedule_refuses_a_moving_data_revision_before_connecting(capsys):
    with FakeKfpApi() as api:
        argv = _nightly_argv(api.url)
        assert main(argv) == 2
    assert api.requests == [] and api.recurring_runs == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pin --data-rev" in err


def test_a_refused_recurring_run_is_one_line(capsys, monkeypatch):
    from kfp_server_api.exceptions import ApiException

    class RefusingClient:
        def __init__(self, host):
            pass

        def create_experiment(self, name):
            raise ApiException(status=401, reason="Unauthorized")

    monkeypatch.setattr("kfp.Client", RefusingClient)
    host, params = "http://kfp.example:8080", str(ROOT / "params.yaml")
    argv = ["schedule", "--cron", "0 2 * * *", "--image", IMAGE, "--host", host, "--params", params]
    assert main(argv) == 2
    refused = "refused the recurring run: 401 Unauthorized"
    assert capsys.readouterr().err == f"error: Kubeflow Pipelines at http://kfp.example:8080 {refused}\n"
