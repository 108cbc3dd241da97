"""The optimizer: fused Adam on the CPU too; a restored state keeps the implementation and the layouts."""

import dataclasses

import pytest
import torch
from fixtures.tiny_training import fit_config, identity_patterns
from torch import nn

from spherereid.config import OptimConfig
from spherereid.training.optim import build_optimizer, load_optimizer_state
from spherereid.training.trainer import fit


def test_the_cpu_optimizer_is_fused_adam_without_graph_capture():
    opt = build_optimizer(
        [nn.Parameter(torch.zeros(2))],
        lr=0.01,
        weight_decay=5e-4,
        betas=(0.9, 0.99),
        device=torch.device("cpu"),
        capturable=True,
    )
    group = opt.param_groups[0]
    assert isinstance(opt, torch.optim.Adam) and group["lr"] == 0.01 and group["fused"]
    assert not group["capturable"]  # graphs are CUDA-only: a float learning rate on the CPU


def test_a_contiguous_saved_state_is_re_laid_like_its_channels_last_parameter():
    torch.manual_seed(0)
    weight = nn.Parameter(torch.randn(4, 3, 3, 3).contiguous(memory_format=torch.channels_last))
    opt = build_optimizer([weight], lr=0.01, weight_decay=0.0, betas=(0.9, 0.999), device=torch.device("cpu"))
    weight.grad = torch.randn_like(weight)
    opt.step()
    saved = opt.state_dict()
    for state in saved["state"].values():  # as a snapshot that lost the layout would hold it
        state["exp_avg"] = state["exp_avg"].contiguous()
        state["exp_avg_sq"] = state["exp_avg_sq"].contiguous()
    expected = {k: v.clone() for k, v in saved["state"][0].items()}
    load_optimizer_state(opt, saved, torch.device("cpu"))
    state = opt.state[weight]
    for name in ("exp_avg", "exp_avg_sq"):
        assert state[name].stride() == weight.stride() != expected[name].stride()
        assert torch.equal(state[name], expected[name])


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


def test_fit_builds_adam_with_the_configured_betas_and_eps(tmp_path):
    """OptimConfig's betas and eps reach torch.optim.Adam (read back from the checkpoint's optimizer)."""
    config = dataclasses.replace(
        fit_config(1), optim=OptimConfig(lr=1e-3, weight_decay=5e-4, betas=(0.8, 0.95), eps=1e-6)
    )
    images, labels = identity_patterns(ids=4, per_id=6)
    fit(
        images=images,
        labels=labels,
        num_classes=4,
        checkpoint_path=tmp_path / "last.pt",
        config=config,
        progress=False,
    )
    group = torch.load(tmp_path / "last.pt", weights_only=True)["optimizer"]["param_groups"][0]
    assert (tuple(group["betas"]), group["eps"]) == ((0.8, 0.95), 1e-6)
