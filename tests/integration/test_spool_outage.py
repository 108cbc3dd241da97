"""A tracking-server outage costs nothing: a real `mlflow server` is SIGKILLed while a loop logs epochs
through the spool, then restarted on the same port; every epoch's metrics end up in MLflow, in order,
once each. Down through the end, close() says so and a later `spherereid tracking replay` sends the rest.

The outage lasts SPHEREREID_OUTAGE_S seconds (default 3; the issue's 60 s run is done by hand). The server
(conftest's `server`) runs on each MLflow backend: sqlite, and PostgreSQL with S3 artifacts, whose
database and bucket outlive the server's restarts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from spherereid.tracking.client import client
from spherereid.tracking.spool import MetricSpool

pytestmark = pytest.mark.slow

KEYS = ("loss", "rank1")
OUTAGE_S = float(os.environ.get("SPHEREREID_OUTAGE_S", "3"))


def epoch_metrics(epoch: int) -> dict[str, float]:
    return {"loss": 5.0 - 0.25 * epoch, "rank1": epoch / 100}


def assert_every_epoch_once(c, run: str, epochs: int) -> None:
    for key in KEYS:
        got = sorted((m.step, m.value) for m in c.get_metric_history(run, key))
        assert got == [(e, epoch_metrics(e)[key]) for e in range(epochs)], key  # in order, once each


def wait_drained(spool: MetricSpool, limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while spool.pending and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spool.pending == 0


def test_an_outage_in_the_middle_loses_and_duplicates_nothing(server, tmp_path):
    c = client(server.uri)
    run = c.create_run(c.create_experiment("outage-middle")).info.run_id
    spool = MetricSpool(tmp_path / "checkpoints", run, server.uri, base_delay=0.2, max_delay=2.0)
    epochs, down_at, up_at = 12, 4, 8
    for epoch in range(epochs):
        if epoch == down_at:
            wait_drained(spool)  # so the outage really cuts the stream in the middle
            server.kill()
        spool.log_metrics(epoch_metrics(epoch), step=epoch)
        if down_at <= epoch < up_at:
            time.sleep(OUTAGE_S / (up_at - down_at))
            # the call returned, the record is on disk, and the drain is still retrying
            assert spool.draining and spool.pending >= len(KEYS) * (epoch - down_at + 1)
        if epoch == up_at:
            server.start()  # the same port
    assert spool.close(timeout=120) is True
    assert_every_epoch_once(c, run, epochs)
    # each epoch kept the timestamp the spool gave it when it was logged (not the time it reached the server)
    journal = [
        json.loads(line) for line in (tmp_path / "checkpoints" / "spool.jsonl").read_text().splitlines()
    ]
    spooled = sorted((r["step"], r["ts"]) for r in journal if r["kind"] == "metric" and r["key"] == "loss")
    assert sorted((m.step, m.timestamp) for m in c.get_metric_history(run, "loss")) == spooled
    assert len(spooled) == epochs


def test_down_through_the_end_then_replay_sends_the_rest_once(server, tmp_path):
    c = client(server.start().uri)
    run = c.create_run(c.create_experiment("outage-end")).info.run_id
    spool_dir = tmp_path / "checkpoints"
    spool = MetricSpool(spool_dir, run, server.uri, base_delay=0.2, max_delay=1.0)
    for epoch in range(3):
        spool.log_metrics(epoch_metrics(epoch), step=epoch)
    wait_drained(spool)
    server.kill()
    for epoch in range(3, 6):
        spool.log_metrics(epoch_metrics(epoch), step=epoch)
    assert spool.close(timeout=2) is False
    assert spool.pending == 3 * len(KEYS)

    server.start()
    cmd = [sys.executable, "-m", "spherereid.cli", "tracking", "replay", str(spool_dir)]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(KEYS) * 3} metric values, 0 params, 0 tags sent (run {run})" in proc.stdout
    assert_every_epoch_once(c, run, 6)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "0 metric values, 0 params, 0 tags sent" in again.stdout
    assert_every_epoch_once(c, run, 6)
