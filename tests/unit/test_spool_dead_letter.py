"""Records of a run the store no longer holds (a removed mlflow.db, a deleted run) never block the records
of other runs: the drain and `spherereid tracking replay` set them aside in spool.dead.jsonl, say so in
one line naming the run and the file, and send the rest (a local sqlite store)."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from spherereid.cli import main as cli_main
from spherereid.tracking.client import client
from spherereid.tracking.spool import DEAD_FILE, MetricSpool, SpoolJournal, replay


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    c = client(uri)
    return uri, c, c.create_experiment("dead-letter")


def spool_for_gone_run(directory, uri: str) -> tuple[str, list[dict]]:
    """Two epochs of a run that is not in the store (the training was cut off before they were sent)."""
    gone = uuid.uuid4().hex
    old = MetricSpool(directory, gone, uri, start=False)
    old.set_tags({"phase": "old"})
    for epoch in range(2):
        old.log_metrics({"loss": 9.0 - epoch}, step=epoch)
    old.close(timeout=0)
    return gone, [json.loads(line) for line in (directory / "spool.jsonl").read_text().splitlines()]


def history(c, run: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in c.get_metric_history(run, key))


def dead_letters(directory) -> list[dict]:
    return [json.loads(line) for line in (directory / DEAD_FILE).read_text().splitlines()]


def test_the_drain_sets_a_gone_runs_records_aside_and_sends_the_live_runs(tmp_path, store, caplog):
    uri, c, exp = store
    spool_dir = tmp_path / "spool"
    gone, old_records = spool_for_gone_run(spool_dir, uri)
    live = c.create_run(exp).info.run_id
    caplog.set_level(logging.WARNING, logger="spherereid.tracking.spool")
    spool = MetricSpool(spool_dir, live, uri, base_delay=0.05, max_delay=0.2)
    for epoch in range(3):
        spool.log_metrics({"loss": 3.0 - epoch}, step=epoch)
    assert spool.close(timeout=60) is True, spool.error
    assert spool.error is None
    assert history(c, live, "loss") == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert dead_letters(spool_dir) == old_records  # every record of the gone run, unchanged, once
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    about = [w for w in warnings if gone in w]
    assert len(about) == 1 and str(spool_dir / DEAD_FILE) in about[0] and "its 3 unsent records" in about[0]
    assert "\n" not in about[0]
    assert spool.sent_counts.set_aside == 3 and spool.sent_counts.metrics == 3
    journal = SpoolJournal(spool_dir)
    assert journal.pending() == []
    journal.close()


def test_a_deleted_run_is_gone_too_and_setting_aside_twice_keeps_one_copy(tmp_path, store):
    uri, c, exp = store
    deleted = c.create_run(exp).info.run_id
    c.delete_run(deleted)
    spool = MetricSpool(tmp_path, deleted, uri, start=False)
    spool.log_metrics({"loss": 1.0}, step=0)
    spool.close(timeout=0)
    # a crash after the records were set aside but before the offset moved: the replay sets them aside again
    journal = SpoolJournal(tmp_path)
    journal.set_aside(journal.pending())
    journal.close()
    res = replay(tmp_path)
    assert res.sent.set_aside == 1 and res.sent.metrics == 0
    assert [r["seq"] for r in dead_letters(tmp_path)] == [1]
    assert replay(tmp_path).sent.set_aside == 0  # nothing left


def test_cli_replay_sets_a_gone_run_aside_sends_the_rest_and_exits_0(
    tmp_path, store, capsys, caplog, monkeypatch
):
    uri, c, exp = store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    gone, old_records = spool_for_gone_run(tmp_path, uri)
    live = c.create_run(exp).info.run_id
    spool = MetricSpool(tmp_path, live, uri, start=False)
    spool.log_metrics({"loss": 0.5}, step=7)
    spool.close(timeout=0)
    assert cli_main(["tracking", "replay", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert f"1 metric values, 0 params, 0 tags sent (run {live})" in out
    assert f"3 records of runs not in {uri} set aside in {tmp_path / DEAD_FILE}" in out
    assert "error:" not in err
    assert any(gone in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    assert history(c, live, "loss") == [(7, 0.5)]
    assert dead_letters(tmp_path) == old_records


def test_cli_replay_of_a_record_mlflow_refuses_is_one_line_and_keeps_the_spool(tmp_path, store, capsys):
    uri, c, exp = store
    run = c.create_run(exp).info.run_id
    c.log_param(run, "lr", "0.1")
    spool = MetricSpool(tmp_path, run, uri, start=False)
    spool.log_params({"lr": 0.2})  # MLflow params are immutable: refused for good, the run exists
    spool.close(timeout=0)
    assert cli_main(["tracking", "replay", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {tmp_path}: records 1-1 of run {run} not sent to {uri} (")
    assert err[-1].endswith(
        f"MLflow refuses them; to go on without them, move {tmp_path} away (it keeps them)"
    )
    assert not (tmp_path / DEAD_FILE).exists() and not (tmp_path / "spool.offset").exists()
