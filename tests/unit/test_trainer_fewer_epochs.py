"""fit(): fewer epochs than the checkpoint holds trains from scratch (never returns a longer-trained
model); `on_start` says whether training resumed (the train stage's MLflow run decision)."""

import torch
from test_trainer import _equal_states, _fit


def test_fewer_epochs_than_the_checkpoint_trains_from_scratch_and_equals_a_straight_run(tmp_path):
    straight = _fit(tmp_path / "a" / "last.pt", epochs=2)
    ckpt = tmp_path / "b" / "last.pt"
    _fit(ckpt, epochs=3)
    starts = []
    shorter = _fit(ckpt, epochs=2, on_start=lambda history: starts.append(len(history)))
    assert starts == [0] and shorter.resumed_from_epoch == 0 and len(shorter.history) == 2
    _equal_states(straight.model.state_dict(), shorter.model.state_dict())
    assert [h.loss for h in straight.history] == [h.loss for h in shorter.history]
    # the longer checkpoint is kept aside, the new one holds exactly the 2 epochs asked for
    assert torch.load(ckpt.with_name("last.pt.stale"), weights_only=True)["epoch"] == 3
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2


def test_on_start_gets_the_resumed_history_when_epochs_grow(tmp_path):
    ckpt = tmp_path / "last.pt"
    first = _fit(ckpt, epochs=1)
    seen = []
    longer = _fit(ckpt, epochs=2, on_start=lambda history: seen.append([h.loss for h in history]))
    assert longer.resumed_from_epoch == 1
    assert seen == [[first.history[0].loss]]
