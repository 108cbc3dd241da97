"""The tracking spool: records on disk before anything else, a drain that never blocks the caller, and
replays that send each record once (a local sqlite store, or a port where nothing listens)."""

from __future__ import annotations

import json

import pytest
from fixtures.mlflow_server import free_port

from spherereid.cli import main as cli_main
from spherereid.tracking.client import client
from spherereid.tracking.spool import (
    MetricSpool,
    Record,
    SpoolError,
    SpoolJournal,
    batches,
    replay,
    send_batch,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite MLflow store and one experiment in it."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    c = client(uri)
    return uri, c, c.create_experiment("spool")


def new_run(store) -> str:
    _, c, exp = store
    return c.create_run(exp).info.run_id


def history(c, run: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(c.get_metric_history(run, key), key=lambda m: m.step)]


def lines(directory) -> list[dict]:
    return [json.loads(line) for line in (directory / "spool.jsonl").read_text().splitlines()]


def dead_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


def test_records_are_on_disk_with_sequence_step_and_timestamp(tmp_path):
    spool = MetricSpool(tmp_path, "run-a", dead_uri(), start=False)
    spool.log_params({"lr": 0.1})
    spool.log_metrics({"loss": 2.5, "acc": 0.25}, step=3)
    recs = lines(tmp_path)
    assert [(r["seq"], r["kind"], r["key"], r["value"], r["step"]) for r in recs] == [
        (1, "param", "lr", "0.1", 0),
        (2, "metric", "loss", 2.5, 3),
        (3, "metric", "acc", 0.25, 3),
    ]
    assert recs[1]["ts"] == recs[2]["ts"] > 1.7e12  # one wall-clock ms timestamp per call
    assert all(r["run"] == "run-a" for r in recs)
    spool.close(timeout=0)
    again = MetricSpool(tmp_path, "run-a", spool.tracking_uri, start=False)  # a resumed training
    again.log_metrics({"loss": 2.0}, step=4)
    assert [r["seq"] for r in lines(tmp_path)] == [1, 2, 3, 4]
    again.close(timeout=0)


def test_a_torn_last_line_is_dropped_and_garbage_is_named(tmp_path):
    spool = MetricSpool(tmp_path, "r", dead_uri(), start=False)
    spool.log_metrics({"loss": 1.0}, step=0)
    spool.close(timeout=0)
    with open(tmp_path / "spool.jsonl", "a") as f:
        f.write('{"seq": 2, "run": "r", "ki')  # a crash in the middle of an append
    journal = SpoolJournal(tmp_path)
    assert [r.seq for r in journal.records] == [1] and journal.next_seq == 2
    journal.close()
    (tmp_path / "spool.jsonl").write_text("not json\n")
    with pytest.raises(SpoolError, match=r"spool.jsonl line 1: not a spool record"):
        SpoolJournal(tmp_path)


def test_one_process_holds_a_spool(tmp_path):
    held = SpoolJournal(tmp_path, "sqlite:///x.db")
    with pytest.raises(SpoolError, match="in use by another process"):
        SpoolJournal(tmp_path)
    held.close()
    SpoolJournal(tmp_path).close()


def test_pending_records_for_another_server_are_not_mixed(tmp_path):
    first = MetricSpool(tmp_path, "r", dead_uri(), start=False)
    first.log_metrics({"x": 1.0}, step=0)
    first.close(timeout=0)
    with pytest.raises(
        SpoolError, match="1 records for http://127.0.0.1:.* are not sent yet; run `spherereid"
    ):
        MetricSpool(tmp_path, "r2", "sqlite:///other.db", start=False)


def test_batches_keep_order_and_cut_at_runs_and_log_batch_limits():
    def rec(seq, run="a", kind="metric"):
        return Record(seq, run, kind, f"k{seq}", 1.0, 0, 0)

    recs = [rec(1), rec(2), rec(3, "b"), *(rec(4 + i, "b", "param") for i in range(101)), rec(105, "a")]
    got = [[r.seq for r in b] for b in batches(recs)]
    # run b: its metric and the first 100 params (the limit), then the 101st param; then run a again
    assert got == [[1, 2], list(range(3, 104)), [104], [105]]


def test_the_caller_never_waits_while_the_server_is_down(tmp_path):
    spool = MetricSpool(tmp_path, "r", dead_uri(), base_delay=0.05, max_delay=0.2)
    for epoch in range(5):
        spool.log_metrics({"loss": 1.0 / (epoch + 1)}, step=epoch)  # returns: the records are on disk
    assert len(lines(tmp_path)) == 5
    assert spool.draining and spool.pending == 5 and spool.error is None  # still retrying
    assert spool.close(timeout=0.3) is False
    assert not (tmp_path / "spool.offset").exists()  # nothing was sent


def test_the_drain_sends_in_order_with_steps_and_timestamps(tmp_path, store):
    uri, c, _ = store
    run = new_run(store)
    spool = MetricSpool(tmp_path, run, uri)
    spool.log_params({"lr": 0.1, "epochs": 3})
    for epoch in range(3):
        spool.log_metrics({"loss": 3.0 - epoch}, step=epoch)
    spool.set_tags({"phase": "done"})
    assert spool.close(timeout=60) is True
    got = c.get_metric_history(run, "loss")
    stamps = [r["ts"] for r in lines(tmp_path) if r["kind"] == "metric"]
    assert sorted((m.step, m.value, m.timestamp) for m in got) == [
        (0, 3.0, stamps[0]),
        (1, 2.0, stamps[1]),
        (2, 1.0, stamps[2]),
    ]
    data = c.get_run(run).data
    assert data.params == {"lr": "0.1", "epochs": "3"} and data.tags["phase"] == "done"
    assert json.loads((tmp_path / "spool.offset").read_text()) == {"sent": 6}
    assert spool.sent_counts.metrics == 3 and spool.sent_counts.params == 2


def test_replay_after_a_partial_flush_duplicates_nothing(tmp_path, store):
    uri, c, _ = store
    run = new_run(store)
    spool = MetricSpool(tmp_path, run, uri, start=False)
    spool.log_params({"lr": 0.1})
    for epoch in range(4):
        spool.log_metrics({"loss": 10.0 - epoch, "acc": epoch / 10}, step=epoch)
    spool.close(timeout=0)
    journal = SpoolJournal(tmp_path)
    # the first 5 records reached MLflow, but the process died before the offset was written
    send_batch(c, journal.records[:5], dedupe=False)
    journal.close()
    res = replay(tmp_path)
    assert (res.sent.metrics, res.sent.params, res.sent.skipped) == (4, 1, 4)  # lr is re-sent: identical
    assert history(c, run, "loss") == [(0, 10.0), (1, 9.0), (2, 8.0), (3, 7.0)]
    assert history(c, run, "acc") == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3)]
    again = replay(tmp_path)
    assert (again.sent.metrics, again.sent.params, again.runs) == (0, 0, ())
    (tmp_path / "spool.offset").unlink()  # even a lost offset file resends no metric value
    third = replay(tmp_path)
    assert (third.sent.metrics, third.sent.skipped) == (0, 8)
    assert len(c.get_metric_history(run, "loss")) == 4


def test_a_refused_record_stops_the_drain_and_says_why(tmp_path, store):
    uri, c, _ = store
    run = new_run(store)
    c.log_param(run, "lr", "0.1")
    spool = MetricSpool(tmp_path, run, uri)
    spool.log_params({"lr": 0.2})  # MLflow params are immutable
    assert spool.close(timeout=60) is False
    assert "INVALID_PARAMETER_VALUE" in spool.error or "Changing param values" in spool.error


def test_cli_replays_then_says_when_the_server_is_down(tmp_path, store, capsys, monkeypatch):
    uri, c, _ = store
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = new_run(store)
    spool = MetricSpool(tmp_path / "ok", run, uri, start=False)
    spool.log_metrics({"loss": 1.5}, step=0)
    spool.close(timeout=0)
    assert cli_main(["tracking", "replay", str(tmp_path / "ok")]) == 0
    out = capsys.readouterr().out
    assert f"to {uri}: 1 metric values, 0 params, 0 tags sent (run {run})" in out
    assert history(c, run, "loss") == [(0, 1.5)]

    down = dead_uri()
    spool = MetricSpool(tmp_path / "down", "r", down, start=False)
    spool.log_metrics({"loss": 1.0}, step=0)
    spool.close(timeout=0)
    monkeypatch.setenv("SPHEREREID_MLFLOW_RETRIES", "1")
    assert cli_main(["tracking", "replay", str(tmp_path / "down")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: MLflow tracking server {down} unreachable (replay spool")
    assert lines(tmp_path / "down")[0]["seq"] == 1 and not (tmp_path / "down" / "spool.offset").exists()

    assert cli_main(["tracking", "replay", str(tmp_path / "nothing")]) == 2
    assert "no spool here (spool.json missing)" in capsys.readouterr().err
