"""fit(): checkpoints every epoch, exact resume, non-finite loss handling, stale checkpoints."""

from pathlib import Path

import numpy as np
import pytest
import torch

import spherereid.training.trainer as trainer_mod
from spherereid.data.transforms import TrainTransform
from spherereid.training import checkpoint
from spherereid.training.loop import NonFiniteLossError
from spherereid.training.trainer import fit

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


def _fit(ckpt, epochs, **over):
    images, labels = _data()
    kwargs = dict(
        images=images,
        labels=labels,
        num_classes=IDS,
        checkpoint_path=ckpt,
        model_kwargs=dict(
            backbone="tiny", head="D", embedding_dim=16, last_stride=1, dropout=0.5, pretrained="none"
        ),
        loss_kwargs=dict(type="sphere", scale=14.0, margin=0.0),
        sampler_kwargs=dict(p=3, k=4, batch_size=12),
        optim_kwargs=dict(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.999)),
        schedule_kwargs=dict(
            warmup_start_lr=5e-5, warmup_epochs=2, milestones=(3,), gamma=0.1, step_per="epoch"
        ),
        transform=TrainTransform(resize=(H, W), crop=(20, 10), flip_prob=0.5, random_erasing=0.5),
        epochs=epochs,
        seed=0,
        device="cpu",
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
    real_build = trainer_mod.build_loss

    def poisoned(*args, **kwargs):
        loss = real_build(*args, **kwargs)
        forward = loss.forward

        def nan_forward(emb, labels):
            value, logits = forward(emb, labels)
            return value * float("nan"), logits

        loss.forward = nan_forward
        return loss

    monkeypatch.setattr(trainer_mod, "build_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="epoch 1"):
        _fit(ckpt, epochs=2)
    after = checkpoint.load(ckpt)
    assert after["epoch"] == 1
    _equal_states(good["model"], after["model"])


def test_too_few_identities_for_p_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="identit"):
        _fit(tmp_path / "last.pt", epochs=1, sampler_kwargs=dict(p=8, k=4, batch_size=32))


def test_changed_training_code_or_data_does_not_resume_a_finished_checkpoint(tmp_path, monkeypatch):
    ckpt = tmp_path / "last.pt"
    _fit(ckpt, epochs=1)
    assert _fit(ckpt, epochs=1).resumed_from_epoch == 1  # same code, config and data: nothing to redo
    monkeypatch.setattr(trainer_mod, "code_fingerprint", lambda: "another-version")
    assert _fit(ckpt, epochs=1).resumed_from_epoch == 0
    assert _fit(ckpt, epochs=1, data_fingerprint="other-data").resumed_from_epoch == 0


def test_code_fingerprint_changes_when_any_file_of_data_modeling_or_training_changes(tmp_path):
    import shutil

    import spherereid

    package = Path(spherereid.__file__).parent
    copy = tmp_path / "spherereid"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    base = trainer_mod.code_fingerprint(copy)
    assert base == trainer_mod.code_fingerprint(package) and len(base) == 16
    files = [p for sub in ("data", "modeling", "training") for p in sorted((copy / sub).rglob("*.py"))]
    assert len(files) > 20 and any(p.parent.name == "datasets" for p in files)  # nested folders count too
    for path in files:
        original = path.read_bytes()
        path.write_bytes(original + b"\n# edited\n")
        assert trainer_mod.code_fingerprint(copy) != base, (
            f"editing {path.relative_to(copy)} kept the fingerprint"
        )
        path.write_bytes(original)
    # a new module in a fingerprinted subpackage counts; files outside them (stages, tracking) do not
    (copy / "modeling" / "new_head.py").write_text("X = 1\n")
    assert trainer_mod.code_fingerprint(copy) != base
    (copy / "modeling" / "new_head.py").unlink()
    (copy / "stages" / "train.py").write_text("# edited\n")
    assert trainer_mod.code_fingerprint(copy) == base
