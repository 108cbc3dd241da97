"""train_one_epoch: a non-finite loss is found at the epoch's end, naming the epoch and the step."""

import pytest
import torch
from test_step import _tiny
from torch import nn

from spherereid.training.loop import NonFiniteLossError, train_one_epoch
from spherereid.training.optim import build_optimizer
from spherereid.training.step import EpochAccumulator, TrainStep


def test_an_epoch_with_a_nan_step_raises_after_the_epoch_naming_epoch_and_step():
    model, criterion = _tiny()
    calls = []

    class NanAtStep2(nn.Module):
        def forward(self, emb, labels):
            calls.append(1)
            loss, logits = criterion(emb, labels)
            return (loss * float("nan") if len(calls) == 3 else loss), logits

    opt = build_optimizer(
        model.parameters(), lr=0.1, weight_decay=0.0, betas=(0.9, 0.999), device=torch.device("cpu")
    )
    step = TrainStep(
        model=model, criterion=NanAtStep2(), optimizer=opt, stats=EpochAccumulator(torch.device("cpu"))
    )
    batches = [(torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 3]))] * 5
    with pytest.raises(NonFiniteLossError, match=r"epoch 7, step 2 \(of steps 0\.\.4\)"):
        train_one_epoch(step=step, scheduler=None, batches=batches, epoch=7, progress=False)
    assert len(calls) == 5  # detected at the end of the epoch, without a host sync per step
