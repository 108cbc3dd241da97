"""`run-local --runner docker` set-up without an engine: the tasks' environment, the image check, the
pipeline root opened to the image's user, and the one-line errors (the runs themselves: tests/container)."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.docker_runner import IMAGE_UID, docker_runner, task_env
from pipeline.settings import LOCAL_SETTINGS, PipelineError

ROOT = Path(__file__).resolve().parents[2]


def test_task_env_defaults_the_mlflow_store_under_the_pipeline_root(tmp_path):
    env = task_env(tmp_path, {"PATH": "/usr/bin", "AWS_ACCESS_KEY_ID": "k", "HOME": "/root"})
    assert env == {
        "AWS_ACCESS_KEY_ID": "k",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }  # PATH and HOME are the image's own


def test_task_env_passes_a_server_uri_and_a_store_under_the_root(tmp_path):
    assert task_env(tmp_path, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})["MLFLOW_TRACKING_URI"] == (
        "http://127.0.0.1:5000"
    )
    inside = f"sqlite:///{tmp_path / 'sub' / 'm.db'}"
    assert task_env(tmp_path, {"MLFLOW_TRACKING_URI": inside})["MLFLOW_TRACKING_URI"] == inside


def test_task_env_refuses_a_sqlite_store_the_tasks_cannot_see(tmp_path):
    with pytest.raises(PipelineError, match=r"mounts only the pipeline root .* unset it"):
        task_env(tmp_path / "kfp", {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})


def test_docker_runner_opens_the_root_to_the_image_user_and_binds_the_image(tmp_path):
    root = tmp_path / "kfp"
    root.mkdir(mode=0o755)
    runner, settings, image = docker_runner(
        root=root, image="localhost/spherereid:abc123", settings=LOCAL_SETTINGS, raw_root=str(tmp_path)
    )
    assert image == "localhost/spherereid:abc123"
    assert stat.S_IMODE(root.stat().st_mode) == 0o777 and IMAGE_UID == 10001
    assert settings.env["MLFLOW_TRACKING_URI"].startswith(f"sqlite:///{root}")
    args = runner.container_run_args
    assert args["network_mode"] == "host"
    (mount,) = args["mounts"]
    assert mount["Source"] == mount["Target"] == str(tmp_path) and mount["ReadOnly"] is True


@pytest.mark.parametrize(
    ("image", "message"),
    [(None, "needs --image"), ("localhost/spherereid:latest", "mutable tag"), ("spherereid", "no tag")],
)
def test_docker_runner_refuses_a_missing_or_mutable_image(tmp_path, image, message):
    with pytest.raises(PipelineError, match=message):
        docker_runner(root=tmp_path, image=image, settings=LOCAL_SETTINGS)


def test_cli_docker_runner_without_an_image_fails_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "model")])}
    env.pop("SPHEREREID_IMAGE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "run-local", "--runner", "docker", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: --runner docker needs --image REF (e.g. from bash scripts/build_image.sh)"
    )
    assert proc.stdout == ""


def test_podman_host_conf_stays_within_the_hard_limits(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/podman_host.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, "SPHEREREID_CACHE": str(tmp_path)},
        check=True,
    )
    assert proc.stdout.strip() == f"export CONTAINERS_CONF={tmp_path / 'containers.conf'}"
    conf = (tmp_path / "containers.conf").read_text()
    hard = subprocess.run(["bash", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
    nofile = 4096 if hard == "unlimited" else min(4096, int(hard))
    assert f'"nofile={nofile}:{nofile}"' in conf and 'netns = "host"' in conf
