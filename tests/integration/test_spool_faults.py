"""Spool faults with real stores and real processes:
- a sqlite store locked by another connection (an `mlflow ui` writing) is waited for, never refused;
- a rerun of the train stage after `rm mlflow.db` succeeds, the lost run's unsent records set aside;
- SIGTERM to a training while the tracking server is down ends with 143, the spool keeping the records.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from fixtures.mlflow_server import LocalMlflowServer
from fixtures.tiny_params import tiny_params

from spherereid.tracking.client import client
from spherereid.tracking.spool import DEAD_FILE, MetricSpool, SpoolJournal
from spherereid.training import termination

pytestmark = pytest.mark.slow
TESTS = str(Path(__file__).resolve().parents[1])
ROOT = Path(TESTS).parent


class DrainDecided(logging.Handler):
    """Set once the drain has classed an error: retrying (transient) or stopped (permanent)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.event, self.messages = threading.Event(), list[str]()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if "retrying" in record.getMessage() or "stopped" in record.getMessage():
            self.event.set()


def test_a_locked_sqlite_store_is_waited_for_and_every_record_arrives(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    c = client(uri)
    run = c.create_run(c.create_experiment("locked")).info.run_id
    decided = DrainDecided()
    spool_log = logging.getLogger("spherereid.tracking.spool")
    spool_log.addHandler(decided)
    holder = sqlite3.connect(db, isolation_level=None)  # another process's write transaction
    holder.execute("BEGIN EXCLUSIVE")
    try:
        spool = MetricSpool(tmp_path / "spool", run, uri, base_delay=0.1, max_delay=0.5)
        for epoch in range(3):
            spool.log_metrics({"loss": 3.0 - epoch}, step=epoch)
        # sqlite waits MLflow's busy_timeout (20 s), then says "database is locked"
        assert decided.event.wait(timeout=180), "the drain never met the lock"
        assert spool.error is None, spool.error  # classed transient: retrying, not stopped
        assert spool.draining and spool.pending == 3
        assert any("database is locked" in m and "retrying" in m for m in decided.messages), decided.messages
    finally:
        holder.execute("ROLLBACK")  # the deterministic release: only after the drain met the lock
        holder.close()
        spool_log.removeHandler(decided)
    assert spool.close(timeout=120) is True, spool.error
    got = sorted((m.step, m.value) for m in c.get_metric_history(run, "loss"))
    assert got == [(0, 3.0), (1, 2.0), (2, 1.0)]


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "spherereid.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_rerun_after_the_store_was_removed_sets_the_lost_runs_records_aside(tmp_path):
    db = tmp_path / "mlflow.db"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
        "PYTHONPATH": str(ROOT / "model"),
        "SPHEREREID_SPOOL_CLOSE_S": "60",
        "OMP_NUM_THREADS": "1",
    }
    params = tiny_params(tmp_path)
    for args in (
        ["synthesize", "--params", str(params), "--out", "raw"],
        [
            "preprocess",
            "--params",
            str(params),
            "--dataset",
            "synthetic",
            "--raw",
            "raw",
            "--out",
            "prepared",
        ],
    ):
        assert _cli(args, tmp_path, env).returncode == 0
    train = ["train", "--params", str(params), "--prepared", "prepared", "--out", "train"]
    first = _cli(train, tmp_path, env)
    assert first.returncode == 0, first.stderr
    old_run = json.loads((tmp_path / "train" / "mlflow_run.json").read_text())["run_id"]
    spool_dir = tmp_path / "train" / "checkpoints" / "spool"
    # records the first training made but never sent (it was cut off), then the store is removed
    unsent = MetricSpool(spool_dir, old_run, env["MLFLOW_TRACKING_URI"], start=False)
    unsent.log_metrics({"late": 1.0}, step=1)
    unsent.close(timeout=0)
    db.unlink()

    rerun = _cli(train, tmp_path, env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    new_run = json.loads((tmp_path / "train" / "mlflow_run.json").read_text())["run_id"]
    assert new_run != old_run
    set_aside = [json.loads(line) for line in (spool_dir / DEAD_FILE).read_text().splitlines()]
    assert [(r["run"], r["key"], r["value"]) for r in set_aside] == [(old_run, "late", 1.0)]
    notes = [line for line in rerun.stderr.splitlines() if old_run in line and DEAD_FILE in line]
    assert len(notes) == 1 and "WARNING" in notes[0], rerun.stderr[-3000:]
    c = client(env["MLFLOW_TRACKING_URI"])
    assert [m.step for m in c.get_metric_history(new_run, "loss")] == [0]  # the rerun's run has its epoch
    assert c.get_run(new_run).data.tags["resumed_from_run"] == old_run
    journal = SpoolJournal(spool_dir)
    assert journal.pending() == []
    journal.close()


# A tiny real training logging through TrainRunLogger (as the train stage does) to the server in
# MLFLOW_TRACKING_URI. After epoch 1 it says "epoch 1" and waits for a line (the parent stops the server);
# after epoch 2, "epoch 2" and waits again (the parent sends SIGTERM): a SIGTERM during the outage.
CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from fixtures.tiny_training import fit_config, fit_tiny
    from spherereid.entrypoint import run_cli
    from spherereid.tracking.runs import TrainRunLogger

    out = Path(sys.argv[2])

    def body():
        logger = TrainRunLogger(
            run_file=out / "mlflow_run.json", checkpoint_run_file=out / "checkpoints" / "mlflow_run.json",
            prepared_dir=out, dataset="tiny", fingerprint="f" * 16, config=fit_config(4),
        )

        def epoch(stats):
            logger.epoch(stats)
            if stats.epoch < 2:
                print(f"epoch {stats.epoch + 1}", flush=True)
                sys.stdin.readline()

        with logger:
            fit_tiny(out / "checkpoints" / "last.pt", 4, on_epoch=epoch, on_start=logger.start)
        return 0

    raise SystemExit(run_cli(body))
    """
)


def test_sigterm_while_the_tracking_server_is_down_exits_143_and_keeps_the_records(tmp_path):
    srv = LocalMlflowServer(tmp_path / "mlflow").start()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": srv.uri,
        "PYTHONPATH": str(ROOT / "model"),
        "SPHEREREID_TERM_GRACE_S": "300",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "train"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, TESTS, str(out)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout.readline().strip() == "epoch 1", proc.stderr.read()
        srv.kill()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "epoch 2", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=280)
        assert proc.returncode == termination.EXIT_CODE, err[-3000:]
        assert "SIGTERM: stopped after epoch 2" in err and "error:" not in err
        run_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
        spool_dir = out / "checkpoints" / "spool"
        journal = SpoolJournal(spool_dir)
        kept = journal.pending()
        journal.close()
        assert {(r.run, r.key, r.step) for r in kept} >= {(run_id, "loss", 1)}  # epoch 2, logged while down

        srv.start()
        replayed = _cli(["tracking", "replay", str(spool_dir)], tmp_path, env)
        assert replayed.returncode == 0, replayed.stderr[-3000:]
        loss = sorted(m.step for m in client(srv.uri).get_metric_history(run_id, "loss"))
        assert loss == [0, 1]  # each epoch once: the one sent before the outage and the one kept
    finally:
        srv.stop()
