"""Device-side epoch statistics, the training step's eager path and the device / precision choices."""

import math

import pytest
import torch
from torch import nn

from spherereid.device import effective_precision, resolve_device
from spherereid.training.loop import (
    EpochAccumulator,
    NonFiniteLossError,
    TrainStep,
    build_optimizer,
    train_one_epoch,
)


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
    ref_opt = torch.optim.Adam(reference.parameters(), lr=0.1, betas=(0.9, 0.999))
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


def test_precision_applies_on_cuda_only_and_the_cpu_optimizer_is_the_reference_adam():
    assert effective_precision("bf16", torch.device("cpu")) == "fp32"
    assert effective_precision("bf16", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="train.precision"):
        effective_precision("fp8", torch.device("cpu"))
    opt = build_optimizer([nn.Parameter(torch.zeros(2))], lr=0.01, weight_decay=5e-4, betas=(0.9, 0.99),
                          device=torch.device("cpu"), capturable=True)  # fmt: skip
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Adam) and group["lr"] == 0.01 and not group["fused"]
    assert not group["capturable"]  # graphs are CUDA-only: the CPU path is unchanged


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_required_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match=r"device 'cuda' .* CUDA is not usable \(.+\)"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setenv("SPHEREREID_REQUIRE_CUDA", "1")  # what the pipeline sets on a GPU task
    with pytest.raises(ValueError, match="SPHEREREID_REQUIRE_CUDA"):
        resolve_device("auto")
    assert resolve_device("cpu").type == "cpu"


def test_extraction_on_the_cpu_ignores_a_bf16_request():
    import numpy as np

    from spherereid.data.transforms import EvalTransform
    from spherereid.inference import extract_features
    from spherereid.modeling.net import ReIDNet

    torch.manual_seed(0)
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=8, last_stride=1, dropout=0.0, pretrained="none")
    images = np.random.default_rng(0).integers(0, 256, (6, 20, 10, 3), dtype=np.uint8)
    tf = EvalTransform(size=(16, 8))
    fp32 = extract_features(net, images, tf, batch_size=4, progress=False)
    bf16 = extract_features(net, images, tf, batch_size=4, precision="bf16", progress=False)
    assert fp32.dtype == np.float32 and np.array_equal(fp32, bf16)


def test_loading_an_optimizer_state_keeps_the_implementation_and_the_lr_tensor():
    from spherereid.training.loop import load_optimizer_state

    def params():
        torch.manual_seed(0)
        return [nn.Parameter(torch.randn(3))]

    eager = torch.optim.Adam(params(), lr=0.01)  # as a CPU (or eager) run saved it
    eager.param_groups[0]["params"][0].grad = torch.ones(3)
    eager.step()
    saved = eager.state_dict()
    saved["param_groups"][0]["lr"] = 0.004  # the scheduler had moved it
    lr = torch.tensor(0.01)
    fast = torch.optim.Adam(params(), lr=lr, fused=True)  # stands in for the fused, graph-ready optimizer
    load_optimizer_state(fast, saved, torch.device("cpu"))
    group = fast.param_groups[0]
    assert group["fused"] is True and group["lr"] is lr and lr.item() == pytest.approx(0.004)
    state = next(iter(fast.state.values()))
    assert state["step"].item() == 1 and state["step"].dtype == torch.float32
    assert torch.equal(state["exp_avg"], eager.state[eager.param_groups[0]["params"][0]]["exp_avg"])
