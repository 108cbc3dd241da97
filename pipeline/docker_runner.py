"""kfp.local.DockerRunner set-up for `run-local --runner docker`: every task runs in our image.

The runner mounts only the pipeline root into each container (at the same path), so what a task writes must
live there: the pipeline root is opened to the image's user (uid 10001), the local MLflow store defaults to
`<pipeline root>/mlflow.db`, and a `--raw-root` folder is mounted read-only. Containers share the host's
network, so a tracking server on 127.0.0.1 answers as it does for the subprocess runner.

The engine is whatever the `docker` SDK reaches: a Docker daemon, or podman's Docker API
(`podman system service --time=0 unix:///PATH/podman.sock` with `DOCKER_HOST=unix:///PATH/podman.sock`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from spherereid.contracts import (
    AWS_ENDPOINT_ENV,
    AWS_KEY_ID_ENV,
    AWS_REGION_ENV,
    AWS_SECRET_KEY_ENV,
    LOG_LEVEL_ENV,
    MLFLOW_PASSWORD_ENV,
    MLFLOW_USERNAME_ENV,
    S3_ENDPOINT_ENV,
    TRACKING_URI_ENV,
)
from spherereid.redaction import redact_uri

from .compile import check_image
from .settings import ClusterSettings, PipelineError

IMAGE_UID = 10001  # the Dockerfile's USER
# Host variables the tasks see (the subprocess runner's tasks inherit the whole environment).
FORWARDED_ENV = (
    TRACKING_URI_ENV,
    S3_ENDPOINT_ENV,
    AWS_ENDPOINT_ENV,
    AWS_KEY_ID_ENV,
    AWS_SECRET_KEY_ENV,
    AWS_REGION_ENV,
    MLFLOW_USERNAME_ENV,
    MLFLOW_PASSWORD_ENV,
    LOG_LEVEL_ENV,
)


def task_env(root: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The tasks' environment: forwarded host variables; a sqlite MLflow store must lie under `root`."""
    environ = dict(os.environ if environ is None else environ)
    env = {k: environ[k] for k in FORWARDED_ENV if environ.get(k)}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    uri = env.setdefault(TRACKING_URI_ENV, f"sqlite:///{root / 'mlflow.db'}")
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).resolve().is_relative_to(root):
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={redact_uri(uri)}: --runner docker mounts only the pipeline root ({root}) "
            f"into the tasks; unset it (the store is then {root / 'mlflow.db'}), point it at a file under "
            "--out, or at a tracking server"
        )
    return env


def _mounts(raw_root: str) -> list[Any]:
    if not raw_root:
        return []
    import docker.types

    path = str(Path(raw_root).resolve())
    return [docker.types.Mount(target=path, source=path, type="bind", read_only=True)]


def docker_runner(
    *, root: Path, image: str | None, settings: ClusterSettings, raw_root: str = ""
) -> tuple[Any, ClusterSettings, str]:
    """(kfp.local.DockerRunner, settings with the tasks' env, checked image) for a run under `root`."""
    import kfp.local

    if not image:
        raise PipelineError("--runner docker needs --image REF (e.g. from bash scripts/build_image.sh)")
    image = check_image(image)
    root.chmod(0o777)  # the tasks run as uid IMAGE_UID and create their run folders here
    env = {**settings.env, **task_env(root)}
    runner = kfp.local.DockerRunner(network_mode="host", mounts=_mounts(raw_root))
    return runner, settings.replace(env=env), image
