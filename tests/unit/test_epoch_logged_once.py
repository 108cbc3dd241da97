"""Each epoch's metrics are in the training's MLflow run once, even when a kill lands between an epoch's
log and the checkpoint covering it (the epoch is trained again on resume; it is not logged again)."""

import pytest
from fixtures.tiny_training import fit_config, fit_tiny

from spherereid.tracking import client as mlflow_client
from spherereid.tracking import runs
from spherereid.tracking.runs import TrainRunLogger
from spherereid.training import checkpoint

EPOCHS = 4
KEYS = ("loss", "accuracy", "lr", "images_per_second")


class Killed(BaseException):
    """The training process dies here (a BaseException: nothing in the library catches it)."""


@pytest.fixture
def store(tmp_path, monkeypatch):
    (tmp_path / "db").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # git_commit: not a repository here
    return tmp_path


def _train(out, checkpoint_every, kill_after_logging=None):
    """The train stage's pairing of fit and TrainRunLogger on the tiny set; `kill_after_logging`: the
    0-based epoch after whose log the process dies."""
    logger = TrainRunLogger(
        run_file=out / "mlflow_run.json",
        checkpoint_run_file=out / "checkpoints" / "mlflow_run.json",
        prepared_dir=out,
        dataset="tiny",
        fingerprint="f" * 16,
        config=fit_config(EPOCHS, checkpoint_every=checkpoint_every),
    )

    def on_epoch(stats):
        logger.epoch(stats)
        if stats.epoch == kill_after_logging:
            raise Killed(f"after logging epoch {stats.epoch + 1}")

    with logger:
        result = fit_tiny(
            out / "checkpoints" / "last.pt",
            EPOCHS,
            checkpoint_every=checkpoint_every,
            on_epoch=on_epoch,
            on_start=logger.start,
        )
    return logger.ref.run_id, result


def _assert_each_epoch_once(run_id, history):
    c = mlflow_client.client(mlflow_client.tracking_uri())
    for key in KEYS:
        logged = [(m.step, m.value) for m in c.get_metric_history(run_id, key)]
        assert sorted(step for step, _ in logged) == list(range(EPOCHS)), (key, logged)
    losses = sorted((m.step, m.value) for m in c.get_metric_history(run_id, "loss"))
    assert [v for _, v in losses] == [h.loss for h in history]  # the resumed run's own curve


def test_an_epoch_retrained_after_a_stop_between_checkpoints_is_logged_once(store):
    out = store / "train"
    with pytest.raises(Killed):  # epoch 3 logged; checkpoints every 2 epochs: last.pt holds epoch 2
        _train(out, checkpoint_every=2, kill_after_logging=2)
    first = runs.read_run_ref(out / "mlflow_run.json").run_id
    run_id, result = _train(out, checkpoint_every=2)
    assert result.resumed_from_epoch == 2 and run_id == first  # the killed run goes on
    _assert_each_epoch_once(run_id, result.history)


def test_an_epoch_logged_while_its_checkpoint_write_died_is_logged_once(store, monkeypatch):
    writes = []

    def die_on_the_second_write(point, path):  # epoch 2's write dies before its file is renamed
        writes.append(point)
        if point == "previous" and writes.count("previous") == 1:
            raise Killed(f"writing {path}")

    out = store / "train"
    monkeypatch.setattr(checkpoint, "fault_hook", die_on_the_second_write)
    with pytest.raises(Killed):  # epoch 2 was logged (the write is in the background); epoch 3 raises
        _train(out, checkpoint_every=1)
    monkeypatch.setattr(checkpoint, "fault_hook", None)
    assert checkpoint.load(out / "checkpoints" / "last.pt")["epoch"] == 1
    run_id, result = _train(out, checkpoint_every=1)
    assert result.resumed_from_epoch == 1
    _assert_each_epoch_once(run_id, result.history)
