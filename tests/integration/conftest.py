"""Opt-in fixtures for the MLflow / S3 integration tests: a tiny trained-looking model.pt, a moto S3
server, a PostgreSQL cluster and `mlflow server` subprocesses, all on 127.0.0.1 with free ports and bounded
waits.

The MLflow servers run on each backend of `mlflow_backend`: "sqlite" (one machine's store) and
"postgres-s3" (PostgreSQL backend store, artifacts in S3 on moto: the stack a team runs, see
fixtures.mlflow_server.team_store). A test that takes `server` or `mlflow_server` runs once per backend
(ids `[sqlite]`, `[postgres-s3]`); the postgres-s3 run skips, saying why, where PostgreSQL is missing.
"""

from __future__ import annotations

import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.mlflow_server import (
    S3_TEST_CREDENTIALS,
    LocalMlflowServer,
    ServerStore,
    free_port,
    sqlite_store,
    stop,
    team_store,
    wait_http,
)
from fixtures.postgres import PostgresCluster, unavailable_reason

S3_ENV = S3_TEST_CREDENTIALS
BACKENDS = ("sqlite", "postgres-s3")
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

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a log line per S3 request in failures

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster for the session (it outlives every mlflow server restart); each server gets
    its own database. Skips, saying why, where PostgreSQL or psycopg2 is missing."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture(scope="module", params=BACKENDS)
def mlflow_backend(request) -> str:
    """The MLflow backend a module's servers use, "sqlite" or "postgres-s3" (the tests run on each)."""
    if request.param == "postgres-s3":
        request.getfixturevalue("postgres_cluster")  # skips here where PostgreSQL is missing
    return request.param


def ensure_bucket(s3: S3Server, bucket: str) -> None:
    """Create `bucket` unless it exists (fixtures of one module share its moto server)."""
    client = s3.client()
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)


def postgres_s3_store(request, bucket: str) -> ServerStore:
    """team_store on a fresh database of the session's cluster and a fresh prefix in `bucket` on the
    module's moto server (both outlive the mlflow server's restarts)."""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    s3: S3Server = request.getfixturevalue("moto_s3")
    ensure_bucket(s3, bucket)
    name = f"mlflow_{uuid.uuid4().hex[:12]}"
    return team_store(cluster.create_database(name), f"s3://{bucket}/{name}", s3.endpoint, S3_ENV)


@pytest.fixture(scope="module")
def server(mlflow_backend, request, tmp_path_factory) -> Iterator[LocalMlflowServer]:
    """A started LocalMlflowServer for a module's fault tests, which may kill() and start() it again (same
    port, same store): on "sqlite", a sqlite file and local artifacts; on "postgres-s3", its own
    PostgreSQL database and S3 prefix."""
    work = tmp_path_factory.mktemp(f"mlflow-{mlflow_backend}")
    store = postgres_s3_store(request, "mlflow-fault") if mlflow_backend == "postgres-s3" else None
    srv = LocalMlflowServer(work, store=store)  # no store: sqlite_store(work)
    try:
        yield srv.start()
    finally:
        srv.stop()


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    bucket: str
    prefix: str
    proc: subprocess.Popen
    backend: str


@pytest.fixture(scope="module")
def mlflow_server(mlflow_backend, moto_s3, request, tmp_path_factory) -> Iterator[MlflowServer]:
    """`mlflow server` with proxied artifacts in S3 on `moto_s3`; its backend store is a sqlite file
    ("sqlite") or its own PostgreSQL database ("postgres-s3")."""
    work = tmp_path_factory.mktemp(f"mlflow-server-{mlflow_backend}")
    # its own bucket, named after its unique work folder: a test may list every object in it, and moto
    # keeps the buckets of earlier modules' servers (its in-memory state is per process, not per server)
    bucket = f"mlflow-test-{work.name}".lower().replace("_", "-")[:63]
    if mlflow_backend == "postgres-s3":
        store = postgres_s3_store(request, bucket)
    else:
        ensure_bucket(moto_s3, bucket)
        s3_env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": moto_s3.endpoint}
        store = ServerStore(sqlite_store(work).backend_store_uri, f"s3://{bucket}/artifacts", s3_env)
    srv = LocalMlflowServer(work, store=store)
    try:
        srv.start(timeout=90)
        prefix = store.artifacts_destination.removeprefix(f"s3://{bucket}/")
        yield MlflowServer(srv.uri, bucket, prefix, srv.proc, mlflow_backend)
    finally:
        srv.stop()
