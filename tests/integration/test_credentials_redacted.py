"""A password in MLFLOW_TRACKING_URI never reaches a file or a log line.

The train, evaluate and register stages run (tiny config, as `python -m` like DVC runs them) against a
real `mlflow server` addressed as http://user:SECRET@127.0.0.1:PORT (a server without authentication
ignores the userinfo); every file the stages write, every line they log and the server's store are
searched for the secret. The files keep the redacted URI, and the stages still find the run: the
environment's URI wins without a warning, and with MLFLOW_TRACKING_URI unset the redacted one connects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.mlflow_server import LocalMlflowServer
from fixtures.tiny_params import tiny_params

pytestmark = pytest.mark.slow
SECRET = "SECRETxyz"


@pytest.fixture
def server(tmp_path):
    srv = LocalMlflowServer(tmp_path / "server")
    try:
        yield srv.start()
    finally:
        srv.stop()


def _stage(name: str, *args: str | Path, env: dict[str, str], log: Path, cwd: Path) -> str:
    """Run `python -m spherereid.stages.<name>` with stdout and stderr appended to `log`; its stdout."""
    cmd = [sys.executable, "-m", f"spherereid.{name}", *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in sorted(root.rglob("*")) if p.is_file() and secret.encode() in p.read_bytes()]


def test_stages_write_and_log_no_credential_of_the_tracking_uri(server, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    params = tiny_params(work, register={"min_rank1": 0.0, "min_map": 0.0})
    secret_uri = f"http://user:{SECRET}@127.0.0.1:{server.port}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": secret_uri,
        "SPHEREREID_LOG_LEVEL": "DEBUG",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SPHEREREID_MLFLOW_RETRIES": "2",
    }
    log, out = tmp_path / "stages.log", work / "outputs"
    p, raw, prep = ("--params", params), work / "raw", work / "prepared"
    _stage("stages.synthesize", *p, "--out", raw, env=env, log=log, cwd=work)
    _stage(
        "stages.preprocess",
        *p,
        "--dataset",
        "synthetic",
        "--raw",
        raw,
        "--out",
        prep,
        env=env,
        log=log,
        cwd=work,
    )
    _stage("stages.train", *p, "--prepared", prep, "--out", out / "train", env=env, log=log, cwd=work)
    _stage(
        "stages.evaluate",
        *p,
        "--prepared",
        prep,
        "--train",
        out / "train",
        "--out",
        out / "eval",
        env=env,
        log=log,
        cwd=work,
    )
    registered = _stage(
        "stages.register",
        *p,
        "--train",
        out / "train",
        "--eval",
        out / "eval",
        "--out",
        out / "register",
        "--prepared",
        prep,
        env=env,
        log=log,
        cwd=work,
    )
    assert "registered spherereid-synthetic version 1" in registered
    no_env = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
    replayed = _stage(
        "tracking.spool", "replay", out / "train" / "checkpoints" / "spool", env=no_env, log=log, cwd=work
    )
    assert f"to http://127.0.0.1:{server.port}:" in replayed  # the redacted URI still connects

    text = log.read_text()
    assert "MLflow run" in text and f"127.0.0.1:{server.port}" in text  # the URI is logged, redacted
    assert "was recorded at" not in text  # the environment's URI is the saved one: no override warning
    assert [line for line in text.splitlines() if SECRET in line] == []
    assert _files_holding(work, SECRET) == []
    assert _files_holding(server.work, SECRET) == []  # params, tags, descriptions and artifacts
