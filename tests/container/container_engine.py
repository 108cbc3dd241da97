"""The container engine the suite drives: docker when a daemon answers, else podman (Debian 12's 4.3).

`find_engine()` returns it or the reason none can be used; `Engine.run` is `ENGINE run --rm IMAGE ...`;
`docker_api(engine, dir)` yields a DOCKER_HOST for the `docker` SDK (podman: its API service on a socket).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_run_local_test():
    spec = importlib.util.spec_from_file_location("_run_local_cfg", ROOT / "tests/pipeline/test_run_local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN_LOCAL = _load_run_local_test()  # its TINY config and _params(): the subprocess runner's tiny run


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"
    env: dict[str, str] = field(default_factory=dict)  # CONTAINERS_CONF for podman

    def cmd(self, *args: str, timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.name, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def run(
        self,
        image: str,
        *command: str,
        mounts: Sequence[tuple[Path, str, str]] = (),
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> subprocess.CompletedProcess:
        """`run --rm --network host` with (host path, container path, "ro"|"rw") bind mounts."""
        args = ["run", "--rm", "--network", "host"]
        for host, target, mode in mounts:
            args += ["-v", f"{host}:{target}:{mode}"]
        for key, value in (env or {}).items():
            args += ["-e", f"{key}={value}"]
        return self.cmd(*args, image, *command, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _podman_env() -> dict[str, str]:
    if os.environ.get("CONTAINERS_CONF"):
        return {}
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "podman_host.sh")], capture_output=True, text=True, check=True
    ).stdout
    key, _, value = out.strip().removeprefix("export ").partition("=")
    return {key: value}


def find_engine() -> Engine | str:
    """The engine to use, or a one-line reason why there is none."""
    forced = os.environ.get("SPHEREREID_ENGINE", "")
    if forced in ("", "docker") and shutil.which("docker"):
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return Engine("docker")
    if forced in ("", "podman") and shutil.which("podman"):
        engine = Engine("podman", _podman_env())
        probe = engine.cmd("info", timeout=60)
        if probe.returncode == 0:
            return engine
        return f"podman is installed but `podman info` fails: {probe.stderr.strip()[-300:]}"
    return "no container engine: no Docker daemon answers and podman is missing (apt-get install podman runc)"


@contextmanager
def docker_api(engine: Engine, workdir: Path) -> Iterator[str]:
    """DOCKER_HOST for the docker SDK: docker's own, or `podman system service` on a socket in workdir."""
    if engine.name == "docker":
        yield os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        return
    sock = workdir / "podman.sock"
    log = open(workdir / "podman-service.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env={**os.environ, **engine.env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"podman system service did not start: {(workdir / 'podman-service.log').read_text()}"
                )
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
