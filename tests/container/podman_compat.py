"""Test-harness-only workaround for kfp 2.17's DockerRunner against podman 4.3's Docker API.

kfp.local.docker_task_handler.run_docker_container always starts the task with `auto_remove=True`, streams
its logs, then calls `container.wait()`. Docker answers 404 for a container auto-remove already deleted (kfp
catches NotFound); podman 4.3 answers 500, so the docker SDK raises APIError and the run fails after the
first task. That is podman's deviation from the Docker API, not the project's, so the fix stays here and
out of the library: this replacement starts the container without auto-remove, streams its logs, waits for
its exit code and removes it afterwards. Everything else (image, command, volumes, mounts, env) is kfp's.

Run the pipeline CLI with it:  python -c "import podman_compat; podman_compat.main()" run-local ...
"""

from __future__ import annotations

from typing import Any


def run_docker_container(
    client: Any, image: str, command: list[str], volumes: dict[str, Any], **container_run_args: Any
) -> int:
    """kfp's run_docker_container, minus auto_remove: wait for the exit code, then remove the container."""
    if ":" not in image.rsplit("/", 1)[-1]:
        image = f"{image}:latest"
    container = client.containers.run(
        image=image,
        command=command,
        detach=True,
        stdout=True,
        stderr=True,
        volumes=volumes,
        **container_run_args,
    )
    try:
        for line in container.logs(stream=True):
            print(line.decode(), end="")
        return int(container.wait()["StatusCode"])
    finally:
        container.remove(force=True)


def install() -> None:
    """Point kfp.local's Docker task handler at the replacement above."""
    from kfp.local import docker_task_handler

    docker_task_handler.run_docker_container = run_docker_container


def main() -> None:
    """`python -m pipeline` with the replacement installed (argv as given after -c)."""
    import sys

    install()
    from pipeline.__main__ import main as pipeline_main

    raise SystemExit(pipeline_main(sys.argv[1:]))
