"""fit(): checkpoints every epoch, exact resume, non-finite loss handling, stale checkpoints."""

import numpy as np
import pytest
import torch

from spherereid.config import (
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
)
from spherereid.modeling import losses
from spherereid.training import checkpoint, resume
from spherereid.training.loop import NonFiniteLossError
from spherereid.training.trainer import FitConfig, fit

IDS, PER_ID, H, W = 6, 8, 24, 12


def _data():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(IDS), PER_ID)
    # identity-dependent colour so the loss has something to learn
    base = rng.integers(0, 255, size=(IDS, 1, 1, 3))
    images = np.clip(base[labels] + rng.integers(-30, 30, size=(IDS * PER_ID, H, W, 3)), 0, 255).astype(
        np.uint8
    )
    return images, labels


def _config(epochs, seed=0, sampler=None, precision="auto"):
    return FitConfig(
        model=ModelConfig(
            backbone="tiny", head="D", embedding_dim=16, last_stride=1, dropout=0.5, pretrained="none"
        ),
        loss=LossConfig(type="sphere", scale=14.0, margin=0.0),
        sampler=sampler or SamplerConfig(p=3, k=4, batch_size=12),
        optim=OptimConfig(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.999)),
        schedule=ScheduleConfig(
            warmup_start_lr=5e-5, warmup_epochs=2, milestones=(3,), gamma=0.1, step_per="epoch"
        ),
        train=TrainConfig(epochs=epochs, seed=seed, device="cpu", precision=precision),
        transform=TransformConfig(
            resize_height=H, resize_width=W, crop_height=20, crop_width=10, flip_prob=0.5, random_erasing=0.5
        ),
    )


def _fit(ckpt, epochs, *, seed=0, sampler=None, precision="auto", **over):
    images, labels = _data()
    kwargs = dict(
        images=images,
        labels=labels,
        num_classes=IDS,
        checkpoint_path=ckpt,
        config=_config(epochs, seed, sampler, precision),
        progress=False,
    )
    kwargs.update(over)
    return fit(**kwargs)


def _equal_states(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    straight = _fit(tmp_path / "a" / "last.pt", epochs=4)
    _fit(tmp_path / "b" / "last.pt", epochs=2)  # "killed" after epoch 2
    resumed = _fit(tmp_path / "b" / "last.pt", epochs=4)
    assert resumed.resumed_from_epoch == 2
    _equal_states(straight.model.state_dict(), resumed.model.state_dict())
    _equal_states(straight.criterion.state_dict(), resumed.criterion.state_dict())
    assert [h.loss for h in straight.history] == [h.loss for h in resumed.history]
    # the learning rates follow the warm-up: epoch 0 starts at warmup_start_lr, epoch 2 at base lr
    lrs = [h.lr for h in straight.history]
    assert lrs[0] == pytest.approx(5e-5) and lrs[2] == pytest.approx(1e-3) and lrs[3] == pytest.approx(1e-4)


def test_after_a_resume_every_optimizer_state_has_its_parameters_strides(tmp_path, monkeypatch):
    # channels_last conv weights (bf16 trains in that layout on every CPU): fused Adam on the CPU silently
    # mixes elements when layouts differ
    _fit(tmp_path / "last.pt", epochs=1, precision="bf16")
    restored = []
    real_restore = resume.restore

    def spy(parts, state, ctx):  # the real restore, then keep its parts to inspect
        real_restore(parts, state, ctx)
        restored.append(parts)

    monkeypatch.setattr(resume, "restore", spy)
    res = _fit(tmp_path / "last.pt", epochs=2, precision="bf16")
    assert res.resumed_from_epoch == 1 and len(restored) == 1
    optimizer = restored[0].optimizer
    weights = restored[0].model.parameters()
    assert any(p.dim() == 4 and not p.is_contiguous() for p in weights)  # channels_last conv weights
    checked = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name in ("exp_avg", "exp_avg_sq"):
                assert optimizer.state[param][name].stride() == param.stride(), name
                checked += 1
    assert checked == 2 * sum(len(g["params"]) for g in optimizer.param_groups)


def test_checkpoint_loads_with_weights_only_and_holds_the_state(tmp_path):
    _fit(tmp_path / "last.pt", epochs=1)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    assert {
        "model",
        "criterion",
        "optimizer",
        "scheduler",
        "sampler",
        "aug_rng",
        "torch_rng",
        "config",
    } <= set(state)
    assert state["config"]["model"]["backbone"] == "tiny"


def test_changed_config_starts_fresh_and_keeps_the_old_checkpoint(tmp_path):
    ckpt = tmp_path / "last.pt"
    _fit(ckpt, epochs=1)
    res = _fit(ckpt, epochs=1, seed=1)
    assert res.resumed_from_epoch == 0
    assert (tmp_path / "last.pt.stale").is_file()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "last.pt"
    _fit(ckpt, epochs=1)
    good = checkpoint.load(ckpt)
    real_build = losses.build_loss

    def poisoned(*args, **kwargs):
        loss = real_build(*args, **kwargs)
        forward = loss.forward

        def nan_forward(emb, labels):
            value, logits = forward(emb, labels)
            return value * float("nan"), logits

        loss.forward = nan_forward
        return loss

    monkeypatch.setattr(losses, "build_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        _fit(ckpt, epochs=2)
    after = checkpoint.load(ckpt)
    assert after["epoch"] == 1
    _equal_states(good["model"], after["model"])


def test_too_few_identities_for_p_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="identit"):
        _fit(tmp_path / "last.pt", epochs=1, sampler=SamplerConfig(p=8, k=4, batch_size=32))


def test_changed_training_code_or_data_does_not_resume_a_finished_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "last.pt"
    _fit(ckpt, epochs=1)
    assert _fit(ckpt, epochs=1).resumed_from_epoch == 1  # same code, config and data: nothing to redo
    monkeypatch.setattr(resume, "code_fingerprint", lambda: "another-version")
    assert _fit(ckpt, epochs=1).resumed_from_epoch == 0
    assert _fit(ckpt, epochs=1, data_fingerprint="other-data").resumed_from_epoch == 0


def test_cuda_graphs_with_several_processes_is_refused_with_how_to_choose(tmp_path):
    from spherereid.training import distributed

    ctx = distributed.DistContext(rank=0, world_size=2, device=torch.device("cuda", 0), backend="nccl")
    config = _config(1)
    config = FitConfig(**{**config.__dict__, "train": TrainConfig(epochs=1, device="cuda", cuda_graphs=True)})
    images, labels = _data()
    expected = r"train.cuda_graphs is true but training runs in 2 processes.*Choose"
    with pytest.raises(ValueError, match=expected):
        fit(
            images=images,
            labels=labels,
            num_classes=IDS,
            checkpoint_path=tmp_path / "last.pt",
            config=config,
            progress=False,
            dist=ctx,
        )
    assert not (tmp_path / "last.pt").exists()
