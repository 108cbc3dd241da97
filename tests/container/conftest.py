"""Fixtures of the container suite (marker `container`): the engine, the image built by
scripts/build_image.sh, podman's Docker API, and one pipeline run with --runner docker shared by the tests
that read its outputs. Without any usable engine every test here skips, naming what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from container_engine import ROOT, RUN_LOCAL, Engine, docker_api, find_engine

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def engine() -> Engine:
    found = find_engine()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The image of this checkout: SPHEREREID_TEST_IMAGE if set (CI builds first), else build it now."""
    if os.environ.get("SPHEREREID_TEST_IMAGE"):
        return os.environ["SPHEREREID_TEST_IMAGE"]
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/build_image.sh")],
        capture_output=True,
        text=True,
        env={**os.environ, **engine.env, "SPHEREREID_ENGINE": engine.name},
        timeout=3000,
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/build_image.sh failed:\n{proc.stderr[-4000:]}", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def docker_host(engine: Engine, tmp_path_factory) -> str:
    with docker_api(engine, tmp_path_factory.mktemp("api")) as host:
        yield host


def pipeline_cli(engine: Engine, docker_host: str, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m pipeline run-local ...`; on podman through podman_compat (see its docstring)."""
    path = os.pathsep.join(filter(None, [str(HERE), str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {
        **os.environ,
        **engine.env,
        "PYTHONPATH": path,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SPHEREREID_LOG_LEVEL": "WARNING",
        "DOCKER_HOST": docker_host,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    if engine.name == "podman":
        cmd = [sys.executable, "-c", "import podman_compat; podman_compat.main()"]
    else:
        cmd = [sys.executable, "-m", "pipeline"]
    return subprocess.run(
        [*cmd, "run-local", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=1200
    )


@pytest.fixture(scope="session")
def docker_run(engine, image, docker_host, tmp_path_factory) -> dict:
    """The tiny synthetic pipeline with --runner docker: {"results", "params", "out", "stderr"}."""
    work = tmp_path_factory.mktemp("docker-run")
    params = RUN_LOCAL._params(work)
    proc = pipeline_cli(
        engine,
        docker_host,
        work,
        "--params",
        str(params),
        "--out",
        str(work / "out"),
        "--runner",
        "docker",
        "--image",
        image,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    return {"results": json.loads(proc.stdout), "params": params, "out": work / "out", "stderr": proc.stderr}
