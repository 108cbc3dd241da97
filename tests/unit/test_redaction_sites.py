"""Where a URI is written or logged, its credentials are not: mlflow_run.json, the spool's spool.json,
retry messages, the one-line errors, the raw source's metadata and errors. The process keeps the real
URI (from the environment), and a saved URI that is the environment's without credentials is no
'other store' (no override warning; the spool's pending records are not refused)."""

from __future__ import annotations

import json
import logging

import pytest
import requests

from spherereid.entrypoint import run_cli
from spherereid.stages.raw_source import RawSourceError, fetch_dvc, recorded_sources
from spherereid.tracking import spool as replay_cli
from spherereid.tracking.client import TrackingUnavailableError, with_retries
from spherereid.tracking.runs import RunRef, read_run_ref, write_run_ref
from spherereid.tracking.spool import META_FILE, Record, SpoolError, SpoolJournal

SECRET = "SECRETxyz"
URI = f"http://user:{SECRET}@127.0.0.1:5999"
SHOWN = "http://127.0.0.1:5999"


def test_mlflow_run_json_holds_the_uri_without_credentials(tmp_path, monkeypatch, caplog):
    path = tmp_path / "mlflow_run.json"
    write_run_ref(path, RunRef("r1", "1", URI))
    assert SECRET not in path.read_text()
    assert json.loads(path.read_text())["tracking_uri"] == SHOWN
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    with caplog.at_level(logging.WARNING):
        ref = read_run_ref(path)
    assert ref == RunRef("r1", "1", URI)  # the environment's URI, credentials and all, in the process
    assert caplog.records == []  # the same store: no "recorded at ...; using ..." warning


def test_another_store_in_the_environment_warns_without_credentials(tmp_path, monkeypatch, caplog):
    path = tmp_path / "mlflow_run.json"
    write_run_ref(path, RunRef("r1", "1", URI))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://admin:{SECRET}@mlflow.example.com")
    with caplog.at_level(logging.WARNING):
        assert read_run_ref(path).tracking_uri == f"https://admin:{SECRET}@mlflow.example.com"
    [warning] = caplog.records
    assert "using MLFLOW_TRACKING_URI=https://mlflow.example.com" in warning.getMessage()
    assert SECRET not in warning.getMessage()


def _record(seq: int) -> Record:
    return Record(seq=seq, run="r1", kind="metric", key="loss", value=1.0, step=seq, ts=0)


def test_the_spool_records_the_uri_without_credentials_and_reopens_with_the_real_one(tmp_path):
    journal = SpoolJournal(tmp_path, URI)
    journal.append([_record(1)])
    journal.close()
    assert SECRET not in (tmp_path / META_FILE).read_text()
    again = SpoolJournal(tmp_path, URI)  # a rerun of the training with records still pending
    assert again.tracking_uri == URI and len(again.pending()) == 1
    again.close()
    with pytest.raises(SpoolError, match="not sent yet"):  # another server is still refused
        SpoolJournal(tmp_path, "http://127.0.0.1:6000")


def test_replay_to_the_environment_uri_of_the_recorded_store_does_not_warn(tmp_path, monkeypatch, caplog):
    SpoolJournal(tmp_path, URI).close()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", URI)
    with caplog.at_level(logging.WARNING):
        assert replay_cli._target_uri(tmp_path) == URI
    assert caplog.records == []


def test_retry_messages_and_the_final_error_name_the_server_without_credentials(caplog):
    def refused():
        raise requests.ConnectionError(f"Connection refused: {URI}")

    with caplog.at_level(logging.WARNING), pytest.raises(TrackingUnavailableError) as err:
        with_retries(refused, what="log metrics", uri=URI, attempts=2, base_delay=0.0)
    assert SHOWN in str(err.value) and SECRET not in str(err.value)
    assert caplog.records and all(SECRET not in r.getMessage() for r in caplog.records)


def test_the_one_line_error_of_a_command_quotes_no_credentials(capsys):
    def body() -> int:
        raise RawSourceError(f"{URI}/repo.git: cannot fetch raw data")

    assert run_cli(body) == 2
    assert capsys.readouterr().err == f"error: {SHOWN}/repo.git: cannot fetch raw data\n"


def test_the_raw_source_metadata_and_fetch_errors_name_the_data_repository_without_its_token(tmp_path):
    repo = f"https://ghp_{SECRET}@127.0.0.1:9/org/data.git?token={SECRET}"
    sources = {"raw_root": "", "data_repo": repo, "data_rev": "v1", "data_path": "data/raw/{dataset}"}
    recorded = recorded_sources(sources)
    assert recorded["data_repo"] == "https://127.0.0.1:9/org/data.git?token=REDACTED"
    assert {k: v for k, v in recorded.items() if k != "data_repo"} == {
        k: v for k, v in sources.items() if k != "data_repo"
    }
    with pytest.raises(RawSourceError) as err:
        fetch_dvc(repo, "v1", "data/raw/x", tmp_path / "x")
    assert SECRET not in str(err.value) and err.value.__cause__ is None
