"""TrainStep's eager path and the device-side epoch statistics (EpochAccumulator)."""

import math

import pytest
import torch
from torch import nn

from spherereid.training.optim import build_optimizer
from spherereid.training.step import EpochAccumulator, TrainStep


def test_accumulator_sums_loss_times_batch_counts_hits_and_finds_the_first_bad_step():
    acc = EpochAccumulator(torch.device("cpu"))
    # step 0: batch of 2, loss 1.5, logits pick classes [1, 0] for labels [1, 1] -> 1 hit
    acc.add(torch.tensor(1.5), torch.tensor([[0.0, 2.0], [3.0, 1.0]]), torch.tensor([1, 1]))
    # step 1: batch of 3, loss 0.5, all 3 right
    acc.add(torch.tensor(0.5), torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 4.0]]), torch.tensor([0, 1, 0]))
    assert acc.read() == (1.5 * 2 + 0.5 * 3, 4, -1)
    acc.add(torch.tensor(float("nan")), torch.zeros(1, 2), torch.tensor([0]))  # step 2
    acc.add(torch.tensor(float("inf")), torch.zeros(1, 2), torch.tensor([1]))  # step 3: not the first
    loss_sum, correct, first_bad = acc.read()
    assert math.isnan(loss_sum) and correct == 5 and first_bad == 2  # argmax of zeros is class 0
    acc.reset()
    assert acc.read() == (0.0, 0, -1)


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))

    class Loss(nn.Module):
        def forward(self, emb, labels):
            return nn.functional.cross_entropy(emb, labels), emb

    return model, Loss()


def test_eager_step_matches_a_hand_written_step_and_records_the_stats():
    model, criterion = _tiny()
    reference = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    reference.load_state_dict(model.state_dict())
    opt = build_optimizer(
        model.parameters(), lr=0.1, weight_decay=0.0, betas=(0.9, 0.999), device=torch.device("cpu")
    )
    ref_opt = torch.optim.Adam(reference.parameters(), lr=0.1, betas=(0.9, 0.999), fused=True)  # as built
    step = TrainStep(
        model=model, criterion=criterion, optimizer=opt, stats=EpochAccumulator(torch.device("cpu"))
    )
    x, y = torch.randn(5, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0])
    losses = []
    for _ in range(3):
        step(x, y)
        ref_loss = nn.functional.cross_entropy(reference(x), y)
        losses.append(ref_loss.item())
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loss_sum, _, first_bad = step.stats.read()
    assert loss_sum == pytest.approx(5 * sum(losses), rel=1e-6) and first_bad == -1
