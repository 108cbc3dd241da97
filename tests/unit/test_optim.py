"""The optimizer: the CPU path is the reference Adam; a restored state keeps the implementation."""

import pytest
import torch
from torch import nn

from spherereid.training.optim import build_optimizer, load_optimizer_state


def test_the_cpu_optimizer_is_the_reference_adam():
    opt = build_optimizer([nn.Parameter(torch.zeros(2))], lr=0.01, weight_decay=5e-4, betas=(0.9, 0.99),
                          device=torch.device("cpu"), capturable=True)  # fmt: skip
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Adam) and group["lr"] == 0.01 and not group["fused"]
    assert not group["capturable"]  # graphs are CUDA-only: the CPU path is unchanged


def test_loading_an_optimizer_state_keeps_the_implementation_and_the_lr_tensor():
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
