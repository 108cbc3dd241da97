"""train.checkpoint_every as a duration (the paper recipe's `5min`): checkpoints exactly when the clock says,
always after the last epoch, and a killed run resumes from the last one. The clock is injected: a fake time
source that advances a fixed number of seconds per epoch (no sleeping)."""

import json
import socket
from pathlib import Path

import pytest
import torch
from fixtures.tiny_training import fit_tiny

from spherereid.config import ConfigError, TrainConfig, checkpoint_cadence, load_params
from spherereid.param_coercion import coerce_section
from spherereid.training import checkpoint

ROOT = Path(__file__).resolve().parents[2]
SECONDS_PER_EPOCH = 100.0  # with `5min`: a checkpoint after every third epoch


class EpochClock:
    """A time source that moves `step` seconds at each reading: fit reads it once when the epochs start
    and once after each epoch, so each epoch takes exactly `step` seconds."""

    def __init__(self, step: float):
        self.step, self.now, self.readings = step, 1000.0, 0

    def __call__(self) -> float:
        self.readings += 1
        self.now += self.step
        return self.now


@pytest.fixture
def written(monkeypatch):
    """The epoch of every checkpoint written, in order (read from the file just renamed into place)."""
    epochs = []

    def record(point: str, path: Path) -> None:
        if point == "renamed":
            epochs.append(int(torch.load(path, weights_only=True)["epoch"]))

    monkeypatch.setattr(checkpoint, "fault_hook", record)
    return epochs


class Killed(Exception):
    pass


def _kill_after(epoch_index):
    def on_epoch(stats):
        if stats.epoch == epoch_index:
            raise Killed

    return on_epoch


def test_checkpoint_every_takes_epochs_or_a_duration():
    assert checkpoint_cadence(2) == (2, 0.0)
    assert checkpoint_cadence("5min") == (0, 300.0)
    assert checkpoint_cadence("300s") == checkpoint_cadence("300 s") == (0, 300.0)
    assert checkpoint_cadence("1.5h") == (0, 5400.0)
    for bad in (0, "5 minutes", "0s", "5", True, 1.5):
        with pytest.raises(ConfigError, match=r"train.checkpoint_every must be .*(>= 1|5min)"):
            TrainConfig(checkpoint_every=bad)


def test_a_duration_survives_the_kfp_struct_and_epochs_come_back_as_ints():
    assert coerce_section("train", {"checkpoint_every": "5min"}) == {"checkpoint_every": "5min"}
    got = coerce_section("train", {"checkpoint_every": 2.0})["checkpoint_every"]
    assert got == 2 and type(got) is int


def test_the_paper_recipe_checkpoints_every_5_minutes_and_the_quickstart_every_epoch():
    assert load_params(ROOT / "params-paper.yaml").train.checkpoint_every == "5min"
    assert load_params(ROOT / "params.yaml").train.checkpoint_every == 1


def test_a_duration_cadence_checkpoints_when_the_time_is_up_and_after_the_last_epoch(tmp_path, written):
    clock = EpochClock(SECONDS_PER_EPOCH)
    fit_tiny(tmp_path / "last.pt", epochs=7, checkpoint_every="5min", clock=clock)
    assert clock.readings == 1 + 7  # at the start, then once per epoch: 100 s per epoch
    assert written == [3, 6, 7]  # 300 s after the start, 300 s after that, and the last epoch
    assert checkpoint.load(tmp_path / "last.pt")["epoch"] == 7


def test_a_killed_run_resumes_from_the_last_timed_checkpoint_with_identical_weights(tmp_path, written):
    straight = fit_tiny(
        tmp_path / "a" / "last.pt", epochs=7, checkpoint_every="5min", clock=EpochClock(SECONDS_PER_EPOCH)
    )
    written.clear()
    ckpt = tmp_path / "b" / "last.pt"
    with pytest.raises(Killed):  # killed after epoch 5: its last checkpoint holds epoch 3
        fit_tiny(
            ckpt,
            epochs=7,
            checkpoint_every="5min",
            clock=EpochClock(SECONDS_PER_EPOCH),
            on_epoch=_kill_after(4),
        )
    assert written == [3] and checkpoint.load(ckpt)["epoch"] == 3
    resumed = fit_tiny(ckpt, epochs=7, checkpoint_every="5min", clock=EpochClock(SECONDS_PER_EPOCH))
    assert resumed.resumed_from_epoch == 3
    assert written == [3, 6, 7]  # the clock starts again with the resumed run: epoch 4 + 3 x 100 s
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_an_epoch_cadence_never_reads_the_clock(tmp_path, written):
    clock = EpochClock(SECONDS_PER_EPOCH)
    fit_tiny(tmp_path / "last.pt", epochs=3, checkpoint_every=2, clock=clock)
    assert clock.readings == 0 and written == [2, 3]


@pytest.mark.slow
def test_two_ranks_whose_clocks_disagree_checkpoint_after_the_same_epochs(tmp_path):
    """Every rank joins a checkpoint's collective (the gathered augmentation streams): the ranks agree on
    the time (the longest rank's), so a rank whose clock runs slow cannot leave the others waiting."""
    import torch.multiprocessing as mp
    from fixtures.ddp_cadence import worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(port, str(tmp_path)), nprocs=2, start_method="spawn")
    due = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # rank 0: 100 s per epoch, rank 1: 150 s; alone they would answer F F T F F T and F T F T F T
    assert due[0] == due[1] == [False, True, False, True, False, True]
