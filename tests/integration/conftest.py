"""Opt-in fixtures for the MLflow / S3 integration tests: a tiny trained-looking model.pt, a moto S3
server and an `mlflow server` subprocess, all on 127.0.0.1 with free ports and bounded waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.mlflow_server import free_port, stop, wait_http

BIN = Path(sys.executable).parent
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
TINY = {"backbone": "tiny", "head": "D", "embedding_dim": 16, "last_stride": 1, "dropout": 0.5}
HEIGHT, WIDTH = 32, 16


def write_tiny_train_dir(
    train_dir: Path, *, seed: int = 0, dataset: str = "toy", dataset_hash: str = "hash-a"
):
    """model.pt of a tiny ReIDNet (as the train stage writes it) plus lineage.json; returns the net."""
    import torch

    from spherereid.modeling.net import ReIDNet
    from spherereid.training import checkpoint

    torch.manual_seed(seed)
    net = ReIDNet(**TINY, pretrained="none")
    with torch.no_grad():  # non-trivial BN statistics, so eval mode differs from train mode
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    train_dir.mkdir(parents=True, exist_ok=True)
    checkpoint.save_atomic(
        {"constructor": dict(net.constructor_args), "state_dict": net.state_dict(), "num_classes": 7},
        train_dir / "model.pt",
    )
    (train_dir / "lineage.json").write_text(
        json.dumps({"dataset": dataset, "dataset_hash": dataset_hash, "height": HEIGHT, "width": WIDTH})
    )
    return net.eval()


@pytest.fixture
def make_train_dir():
    """write_tiny_train_dir as a fixture (test modules do not import conftest)."""
    return write_tiny_train_dir


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def server_tools():
    """free_port, wait_http and stop for tests that start their own server."""
    return free_port, wait_http, stop


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )


@pytest.fixture(scope="module")
def moto_s3() -> Iterator[S3Server]:
    """moto's S3 API over real HTTP on 127.0.0.1 (in memory, any credentials)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    bucket: str
    prefix: str
    proc: subprocess.Popen


@pytest.fixture(scope="module")
def mlflow_server(moto_s3, tmp_path_factory) -> Iterator[MlflowServer]:
    """`mlflow server` (sqlite backend, proxied artifacts in s3://mlflow-test/artifacts on moto)."""
    bucket, prefix = "mlflow-test", "artifacts"
    moto_s3.client().create_bucket(Bucket=bucket)
    work = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {
        **os.environ,
        **S3_ENV,
        "MLFLOW_S3_ENDPOINT_URL": moto_s3.endpoint,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{work / 'server.db'}",
        "--artifacts-destination",
        f"s3://{bucket}/{prefix}",
    ]
    log = open(work / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=90, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{(work / 'server.log').read_text()[-3000:]}") from None
        yield MlflowServer(f"http://127.0.0.1:{port}", bucket, prefix, proc)
    finally:
        stop(proc)
        log.close()
