"""The training's metrics survive a tracking outage: a real `mlflow server` is SIGKILLed during a real
(tiny) training and restarted; every epoch's metrics reach the run once each, in order. Still down at the
end: `finish` says so in one line, the model and spool stay, and a rerun drains the spool without training.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.mlflow_server import LocalMlflowServer
from fixtures.tiny_training import fit_config as _fit_config
from fixtures.tiny_training import fit_tiny as _fit

from spherereid.tracking.client import client
from spherereid.tracking.runs import TrackingBacklog, TrainRunLogger

pytestmark = pytest.mark.slow
EPOCHS = 6


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = LocalMlflowServer(tmp_path / "mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.uri)
    monkeypatch.setenv("SPHEREREID_SPOOL_CLOSE_S", "60")
    try:
        yield srv.start()
    finally:
        srv.stop()


def _logger(out: Path, epochs: int) -> TrainRunLogger:
    return TrainRunLogger(
        run_file=out / "mlflow_run.json",
        checkpoint_run_file=out / "checkpoints" / "mlflow_run.json",
        prepared_dir=out,
        dataset="tiny",
        fingerprint="f" * 16,
        config=_fit_config(epochs),
    )


def _train(out: Path, logger: TrainRunLogger, on_epoch=None):
    def epoch(stats):
        logger.epoch(stats)
        if on_epoch is not None:
            on_epoch(stats.epoch)

    with logger:
        return _fit(out / "checkpoints" / "last.pt", EPOCHS, on_epoch=epoch, on_start=logger.start)


def _assert_every_epoch_once(uri: str, run_id: str, history) -> None:
    got = [(m.step, m.value) for m in client(uri).get_metric_history(run_id, "loss")]
    assert sorted(got) == [(h.epoch, h.loss) for h in history]  # once each, every epoch
    assert [s for s, _ in sorted(got, key=lambda sv: sv[0])] == list(range(EPOCHS))


def test_a_server_killed_during_training_and_restarted_gets_every_epoch_once(server, tmp_path):
    logger = _logger(tmp_path, EPOCHS)

    def outage(epoch: int) -> None:
        if epoch == 1:
            server.kill()  # epochs 2-3 are logged while it is down
        if epoch == 3:
            server.start()

    result = _train(tmp_path, logger, outage)
    run_id = logger.finish([])
    _assert_every_epoch_once(server.uri, run_id, result.history)


def test_still_down_at_the_end_then_a_rerun_replays_without_training(server, tmp_path, monkeypatch):
    monkeypatch.setenv("SPHEREREID_SPOOL_CLOSE_S", "1")
    logger = _logger(tmp_path, EPOCHS)
    result = _train(tmp_path, logger, lambda e: server.kill() if e == 2 else None)
    with pytest.raises(TrackingBacklog) as err:
        logger.finish([])
    spool = tmp_path / "checkpoints" / "spool"
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{spool}: ")
    assert f"spherereid tracking replay {spool}" in message and "does not retrain" in message
    server.start()
    monkeypatch.setenv("SPHEREREID_SPOOL_CLOSE_S", "60")
    again = _logger(tmp_path, EPOCHS)
    rerun = _train(tmp_path, again)
    assert rerun.resumed_from_epoch == EPOCHS  # the finished checkpoint: no training
    run_id = again.finish([])
    assert run_id == logger.ref.run_id
    _assert_every_epoch_once(server.uri, run_id, result.history)
