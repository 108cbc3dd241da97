"""The fault tests' `server` runs on the backend its test id names: on [postgres-s3] a run is a row of its
PostgreSQL database and an artifact an object under its S3 prefix; on [sqlite] a row of its sqlite file and
a file under its local artifact folder. Both survive a SIGKILL and a restart on the same port."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from spherereid.tracking.client import client

pytestmark = pytest.mark.slow


def stored_run_ids(backend_store_uri: str) -> set[str]:
    """The run ids in the server's backend store, read from the database itself (not through MLflow)."""
    if backend_store_uri.startswith("sqlite:///"):
        with sqlite3.connect(backend_store_uri.removeprefix("sqlite:///")) as db:
            return {row[0] for row in db.execute("SELECT run_uuid FROM runs")}
    import psycopg2

    dsn = backend_store_uri.replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg2.connect(dsn) as db, db.cursor() as cur:
        cur.execute("SELECT run_uuid FROM runs")
        return {row[0] for row in cur.fetchall()}


def stored_artifacts(destination: str, moto_s3) -> list[str]:
    """Every artifact path under the server's artifact destination, read from the storage itself."""
    if not destination.startswith("s3://"):
        return [str(p.relative_to(destination)) for p in Path(destination).rglob("*") if p.is_file()]
    bucket, prefix = destination.removeprefix("s3://").split("/", 1)
    listed = moto_s3.client().list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return [obj["Key"].removeprefix(prefix + "/") for obj in listed.get("Contents", [])]


def test_runs_and_artifacts_land_in_the_store_the_id_names_and_outlive_a_restart(
    server, mlflow_backend, moto_s3, tmp_path
):
    expected_scheme = {"sqlite": "sqlite:///", "postgres-s3": "postgresql+psycopg2://"}[mlflow_backend]
    assert server.store.backend_store_uri.startswith(expected_scheme)
    assert server.store.artifacts_destination.startswith("s3://") == (mlflow_backend == "postgres-s3")
    c = client(server.uri)
    run = c.create_run(c.create_experiment(f"where-{mlflow_backend}")).info.run_id
    note = tmp_path / "note.txt"
    note.write_text("kept\n")
    c.log_artifact(run, str(note), artifact_path="notes")

    assert run in stored_run_ids(server.store.backend_store_uri)
    assert any(
        p.endswith(f"{run}/artifacts/notes/note.txt")
        for p in stored_artifacts(server.store.artifacts_destination, moto_s3)
    )

    server.kill()
    server.start()
    assert c.get_run(run).info.run_id == run
    local = c.download_artifacts(run, "notes/note.txt", str(tmp_path / "back"))
    assert Path(local).read_text() == "kept\n"
