"""Warm-up + step schedule: the paper's numbers, per-iteration stepping, checkpoint round trip."""

import pytest
import torch

from spherereid.training.schedule import build_scheduler, lr_at

PAPER = dict(base_lr=1e-3, warmup_start_lr=5e-5, warmup_epochs=20, milestones=(80, 100), gamma=0.1)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 5e-5),
        (10, 5.25e-4),
        (19, 9.525e-4),
        (20, 1e-3),
        (79, 1e-3),
        (80, 1e-4),
        (99, 1e-4),
        (100, 1e-5),
        (139, 1e-5),
    ],
)
def test_paper_values(epoch, expected):
    assert lr_at(epoch, **PAPER) == pytest.approx(expected, rel=1e-12)


def test_fractional_epoch_interpolates_and_no_warmup():
    # halfway between epoch 0 (5e-5) and epoch 1 (5e-5 + 9.5e-4 / 20 = 9.75e-5)
    assert lr_at(0.5, **PAPER) == pytest.approx(7.375e-5, rel=1e-12)
    assert lr_at(0, 1e-3, 5e-5, 0, (3,), 0.5) == pytest.approx(1e-3)
    assert lr_at(3, 1e-3, 5e-5, 0, (3,), 0.5) == pytest.approx(5e-4)


def _optimizer(lr=1e-3):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_epoch_scheduler_follows_lr_at_from_construction():
    opt = _optimizer()
    sched = build_scheduler(opt, **PAPER, step_per="epoch")
    assert opt.param_groups[0]["lr"] == pytest.approx(5e-5)
    seen = {}
    for epoch in range(140):
        seen[epoch] = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
    for epoch, expected in [
        (0, 5e-5),
        (10, 5.25e-4),
        (19, 9.525e-4),
        (20, 1e-3),
        (79, 1e-3),
        (80, 1e-4),
        (100, 1e-5),
        (139, 1e-5),
    ]:
        assert seen[epoch] == pytest.approx(expected, rel=1e-9)


def test_iteration_scheduler_matches_epoch_boundaries_and_interpolates():
    iters = 7
    opt = _optimizer()
    sched = build_scheduler(opt, **PAPER, step_per="iteration", iters_per_epoch=iters)
    for step in range(110 * iters):
        lr = opt.param_groups[0]["lr"]
        if step % iters == 0:
            assert lr == pytest.approx(lr_at(step // iters, **PAPER), rel=1e-9)
        if step == 3 * iters + 2:  # epoch 3 + 2/7 in the warm-up: 5e-5 + 9.5e-4 * (23/7) / 20
            assert lr == pytest.approx(5e-5 + 9.5e-4 * (23 / 7) / 20, rel=1e-9)
        opt.step()
        sched.step()


def test_state_dict_round_trip_through_weights_only_load(tmp_path):
    opt = _optimizer()
    sched = build_scheduler(opt, **PAPER, step_per="iteration", iters_per_epoch=5)
    for _ in range(37):
        opt.step()
        sched.step()
    torch.save({"scheduler": sched.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ck.pt")
    state = torch.load(tmp_path / "ck.pt", weights_only=True)

    opt2 = _optimizer()
    sched2 = build_scheduler(opt2, **PAPER, step_per="iteration", iters_per_epoch=5)
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(37 / 5, **PAPER), rel=1e-12)
    for step in range(38, 60):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        assert opt2.param_groups[0]["lr"] == pytest.approx(lr_at(step / 5, **PAPER), rel=1e-12)


def test_rejects_bad_step_per():
    with pytest.raises(ValueError, match="schedule.step_per"):
        build_scheduler(_optimizer(), **PAPER, step_per="batch")
