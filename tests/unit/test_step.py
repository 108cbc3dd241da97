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


def test_a_graph_replay_that_did_not_advance_the_step_counter_is_an_error():
    from spherereid.training.step import GraphCaptureError, check_replay_advanced

    check_replay_advanced(5, 6, torch.device("cuda", 1))  # one step per replay: fine
    for after in (5, 7):
        with pytest.raises(GraphCaptureError, match=r"did no work on replay on cuda:1 \(step counter 5 -> "):
            check_replay_advanced(5, after, torch.device("cuda", 1))


def test_cuda_graphs_auto_is_on_for_one_gpu_and_off_under_ddp_or_off_cuda(caplog):
    from spherereid.training.step import resolve_cuda_graphs

    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    caplog.set_level("INFO", logger="spherereid.training.step")
    assert resolve_cuda_graphs("auto", cuda, 1, "auto") is True
    assert resolve_cuda_graphs(True, cuda, 1, "bf16") is True
    assert (
        resolve_cuda_graphs("auto", cpu, 1, "auto") is False
        and resolve_cuda_graphs(True, cpu, 1, "fp32") is False
    )
    assert resolve_cuda_graphs(False, cuda, 1, "auto") is False
    assert not caplog.records
    assert resolve_cuda_graphs("auto", cuda, 2, "auto") is False
    assert [r.getMessage() for r in caplog.records] == [
        "train.cuda_graphs auto: off, 2 processes train under DDP (its all-reduce runs eagerly)"
    ]
    assert resolve_cuda_graphs("auto", cuda, 1, "fp16") is False  # GradScaler: not capturable
    with pytest.raises(ValueError, match=r"train.cuda_graphs is true but training runs in 2 processes.*auto"):
        resolve_cuda_graphs(True, cuda, 2, "auto")


def test_the_paper_params_capture_on_one_gpu_and_run_eagerly_under_torchrun():
    from pathlib import Path

    from spherereid.config import load_params
    from spherereid.training.step import resolve_cuda_graphs

    train = load_params(Path(__file__).resolve().parents[2] / "params-paper.yaml").train
    cuda = torch.device("cuda", 0)
    assert resolve_cuda_graphs(train.cuda_graphs, cuda, 1, train.precision) is True
    assert resolve_cuda_graphs(train.cuda_graphs, cuda, 4, train.precision) is False  # not refused
