"""TrainRunLogger on a local sqlite MLflow store: params, tags, per-epoch metrics, FAILED on error, resume."""

from __future__ import annotations

import pytest

from spherereid.config import (
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
)
from spherereid.tracking import client as mlflow_client
from spherereid.tracking import lineage, runs
from spherereid.tracking.runs import TrainRunLogger, run_params
from spherereid.training.step import EpochStats
from spherereid.training.trainer import FitConfig

CONFIG = FitConfig(
    ModelConfig(backbone="tiny"),
    LossConfig(),
    SamplerConfig(),
    OptimConfig(),
    ScheduleConfig(),
    TrainConfig(seed=3),
    TransformConfig(),
)


@pytest.fixture
def store(tmp_path, monkeypatch):
    (tmp_path / "db").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # git_commit: not a repository here
    return tmp_path


def _logger(out, config=CONFIG):
    prepared = out.parent / "prepared"
    prepared.mkdir(exist_ok=True)
    return TrainRunLogger(
        run_file=out / "mlflow_run.json",
        checkpoint_run_file=out / "checkpoints" / "mlflow_run.json",
        prepared_dir=prepared,
        dataset="toy",
        fingerprint="fp-1",
        config=config,
    )


def _stats(epoch, loss):
    return EpochStats(epoch=epoch, loss=loss, accuracy=0.5, lr=1e-3, images=100, seconds=2.0)


def test_run_params_name_every_field_of_every_section_and_the_dataset():
    flat = run_params(CONFIG, "toy", "fp-1")
    assert flat["model.backbone"] == "tiny" and flat["train.seed"] == 3 and flat["optim.lr"] == 1e-3
    assert flat["dataset.name"] == "toy" and flat["dataset.fingerprint"] == "fp-1"
    # 6 model + 3 loss + 4 sampler (p, k, batch_size, type) + 4 optim + 5 schedule + 8 train + 8 transform
    # fields, + 2 dataset keys, + the precision actually used
    assert flat["sampler.type"] == "balanced"
    assert len(flat) == 6 + 3 + 4 + 4 + 5 + 8 + 8 + 2 + 1
    assert flat["train.precision"] == "auto" and flat["train.precision_used"] in ("bf16", "fp32")


def test_the_used_precision_is_the_asked_one_resolved_on_the_device():
    import dataclasses

    for asked in ("fp32", "bf16"):
        config = dataclasses.replace(CONFIG, train=TrainConfig(seed=3, device="cpu", precision=asked))
        assert run_params(config, "toy", "fp-1")["train.precision_used"] == asked


def test_a_training_logs_params_tags_dataset_and_epochs_and_leaves_the_run_open(store):
    out = store / "train"
    with _logger(out) as logger:
        logger.start([])
        logger.epoch(_stats(0, 2.5))
        logger.epoch(_stats(1, 1.5))
    (out / "history.png").write_bytes(b"png")
    run_id = logger.finish([out / "history.png"])
    assert runs.read_run_ref(out / "mlflow_run.json").run_id == run_id
    run = mlflow_client.client(mlflow_client.tracking_uri()).get_run(run_id)
    assert run.info.status == "RUNNING"  # register ends it
    assert run.data.params["model.backbone"] == "tiny" and run.data.params["dataset.name"] == "toy"
    tags = run.data.tags
    assert tags["dataset"] == "toy" and tags["dataset_hash"] == "fp-1" and tags["seed"] == "3"
    assert tags["params_hash"] == lineage.params_hash(run_params(CONFIG, "toy", "fp-1"))
    history = mlflow_client.client(mlflow_client.tracking_uri()).get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.5), (1, 1.5)]
    ips = mlflow_client.client(mlflow_client.tracking_uri()).get_metric_history(run_id, "images_per_second")
    assert [m.value for m in ips] == [50.0, 50.0]
    assert [d.dataset.digest for d in run.inputs.dataset_inputs] == ["fp-1"]


def test_an_error_inside_the_block_marks_the_run_failed_and_propagates(store):
    out = store / "train"
    with pytest.raises(KeyboardInterrupt), _logger(out) as logger:
        logger.start([])
        raise KeyboardInterrupt  # any exception, as the old BaseException catch did
    run = mlflow_client.client(mlflow_client.tracking_uri()).get_run(logger.ref.run_id)
    assert run.info.status == "FAILED"


def test_an_error_before_the_run_opens_needs_no_run(store):
    with pytest.raises(ValueError, match="bad data"), _logger(store / "train") as logger:
        raise ValueError("bad data")
    assert logger.ref is None
    with pytest.raises(RuntimeError, match="start"):
        logger.epoch(_stats(0, 1.0))


def test_a_resumed_checkpoint_continues_its_run_and_new_params_get_the_whole_curve(store):
    out = store / "train"
    with _logger(out) as first:
        first.start([])
        first.epoch(_stats(0, 2.5))
    resumed = [_stats(0, 2.5)]
    with _logger(out) as same:
        same.start(resumed)  # same params: the checkpoint's run goes on
    assert same.ref.run_id == first.ref.run_id
    other = FitConfig(**{**CONFIG.__dict__, "train": TrainConfig(seed=3, epochs=200)})
    with _logger(out, other) as changed:
        changed.start(resumed)  # a continued checkpoint under new params: a new run with the old epochs
    assert changed.ref.run_id != first.ref.run_id
    c = mlflow_client.client(mlflow_client.tracking_uri())
    assert c.get_run(changed.ref.run_id).data.tags["resumed_from_run"] == first.ref.run_id
    assert [m.value for m in c.get_metric_history(changed.ref.run_id, "loss")] == [2.5]
