"""Checkpoints written in the background: snapshots, a kill mid-write, checkpoint_every and resume."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

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
from spherereid.training import checkpoint
from spherereid.training.trainer import FitConfig, fit


def test_snapshot_copies_nested_tensors_so_training_can_go_on():
    live = {"model": {"w": torch.zeros(3)}, "history": [{"loss": 1.0}], "rng": (torch.ones(2), 5)}
    snap = checkpoint.snapshot(live)
    live["model"]["w"].add_(7)
    live["rng"][0].mul_(0)
    assert torch.equal(snap["model"]["w"], torch.zeros(3)) and torch.equal(snap["rng"][0], torch.ones(2))
    assert snap["history"] == [{"loss": 1.0}] and snap["rng"][1] == 5 and isinstance(snap["rng"], tuple)


def test_writer_writes_in_the_background_and_close_waits_for_it(tmp_path):
    writer = checkpoint.CheckpointWriter()
    writer.submit({"epoch": 1, "w": torch.arange(4.0)}, tmp_path / "last.pt")
    writer.submit({"epoch": 2, "w": torch.arange(4.0) * 2}, tmp_path / "last.pt")  # waits for epoch 1
    writer.close()
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.arange(4.0) * 2)


def test_a_failed_write_is_raised_by_the_next_submit_or_close(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    writer = checkpoint.CheckpointWriter()
    writer.submit({"epoch": 1}, tmp_path / "blocker" / "last.pt")
    with pytest.raises(OSError):
        writer.close()


KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    import torch
    from spherereid.training import checkpoint

    path = sys.argv[1]
    checkpoint.save_atomic({"epoch": 1, "w": torch.zeros(8)}, path)

    def slow_fsync(fd):  # a slow disk: the new file is half written when the kill comes
        print("writing", flush=True)
        time.sleep(60)

    os.fsync = slow_fsync
    writer = checkpoint.CheckpointWriter()
    writer.submit(checkpoint.snapshot({"epoch": 2, "w": torch.ones(200_000)}), path)
    time.sleep(60)
    """
)


def test_a_kill_during_the_background_write_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        partial = list(tmp_path.glob(".last.pt.tmp-*"))
        assert len(partial) == 1 and partial[0].stat().st_size > 0  # the new file is on its way
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    state = checkpoint.load(path)  # the previous checkpoint, complete
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.zeros(8))
    checkpoint.save_atomic({"epoch": 3}, path)  # the next save clears the dead process's leftover
    assert not list(tmp_path.glob(".last.pt.tmp-*")) and checkpoint.load(path)["epoch"] == 3


IDS, PER_ID, H, W = 4, 6, 16, 8


def _fit(ckpt: Path, epochs: int, checkpoint_every: int = 1, **over):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(IDS), PER_ID)
    images = rng.integers(0, 256, size=(IDS * PER_ID, H, W, 3), dtype=np.uint8)
    config = FitConfig(
        model=ModelConfig(
            backbone="tiny", head="D", embedding_dim=8, last_stride=1, dropout=0.5, pretrained="none"
        ),
        loss=LossConfig(type="sphere", scale=14.0, margin=0.0),
        sampler=SamplerConfig(p=2, k=3, batch_size=6),
        optim=OptimConfig(lr=1e-3, weight_decay=5e-4, betas=(0.9, 0.999)),
        schedule=ScheduleConfig(
            warmup_start_lr=5e-5, warmup_epochs=1, milestones=(2,), gamma=0.1, step_per="epoch"
        ),
        train=TrainConfig(epochs=epochs, device="cpu", checkpoint_every=checkpoint_every),
        transform=TransformConfig(
            resize_height=H, resize_width=W, crop_height=12, crop_width=6, flip_prob=0.5, random_erasing=0.5
        ),
    )
    kwargs = dict(
        images=images, labels=labels, num_classes=IDS, checkpoint_path=ckpt, config=config, progress=False
    )
    kwargs.update(over)
    return fit(**kwargs)


class Killed(Exception):
    pass


def _kill_after(epoch_index):
    def on_epoch(stats):
        if stats.epoch == epoch_index:
            raise Killed

    return on_epoch


def test_checkpoint_every_saves_every_nth_epoch_and_the_last_and_resumes_exactly(tmp_path):
    straight = _fit(tmp_path / "a" / "last.pt", epochs=3)
    ckpt = tmp_path / "b" / "last.pt"
    with pytest.raises(Killed):
        _fit(ckpt, epochs=5, checkpoint_every=2, on_epoch=_kill_after(0))  # killed after epoch 1
    assert not ckpt.exists()  # epoch 1 is not a checkpoint epoch
    with pytest.raises(Killed):
        _fit(ckpt, epochs=5, checkpoint_every=2, on_epoch=_kill_after(2))  # killed after epoch 3
    assert checkpoint.load(ckpt)["epoch"] == 2
    resumed = _fit(ckpt, epochs=3, checkpoint_every=2)  # the last epoch is always saved
    assert resumed.resumed_from_epoch == 2 and checkpoint.load(ckpt)["epoch"] == 3
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_labels_are_checked_once_before_training(tmp_path):
    bad = np.repeat(np.arange(IDS), PER_ID)
    bad[5] = IDS  # one label past num_classes
    with pytest.raises(ValueError, match=rf"labels must lie in 0\.\.{IDS - 1}, got 0\.\.{IDS}"):
        _fit(tmp_path / "last.pt", epochs=1, labels=bad)
    assert not (tmp_path / "last.pt").exists()


def test_a_checkpoint_is_hashed_as_it_is_written_and_never_read_back(tmp_path, monkeypatch):
    import builtins
    import hashlib

    opened = []
    real_open = builtins.open

    def recording_open(file, mode="r", *args, **kwargs):
        opened.append((os.path.basename(str(file)), mode))
        return real_open(file, mode, *args, **kwargs)

    path = tmp_path / "last.pt"
    writer = checkpoint.CheckpointWriter(background=False)
    monkeypatch.setattr(builtins, "open", recording_open)
    writer.submit({"epoch": 1, "w": torch.arange(300_000.0)}, path)  # 1.2 MB: more than one read block
    monkeypatch.undo()
    writer.close()
    written = [(name, mode) for name, mode in opened if not name.endswith(".sha256")]
    assert written == [(f".last.pt.tmp-{os.getpid()}", "wb")]  # opened once, to write; never read back
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "last.pt.sha256").read_text() == f"{digest}  last.pt\n"
    assert checkpoint.load(path)["epoch"] == 1


def _one_snapshot_at_a_time(tmp_path, device):
    live = {
        "epoch": 1,
        "w": torch.zeros(1000, device=device),
        "opt": [{"m": torch.zeros(3, 4, device=device)}],
    }
    path = tmp_path / "last.pt"
    writer = checkpoint.CheckpointWriter()
    first = writer.submit_snapshot(live, path)
    live["epoch"] = 2  # training goes on, in place
    live["w"].add_(1)
    live["opt"][0]["m"].add_(2)
    second = writer.submit_snapshot(live, path)  # after epoch 1's write: its buffers are refilled
    writer.close()
    assert second["w"].data_ptr() == first["w"].data_ptr()
    assert second["opt"][0]["m"].data_ptr() == first["opt"][0]["m"].data_ptr()
    previous = checkpoint.load(checkpoint.previous(path))
    assert previous["epoch"] == 1 and torch.equal(previous["w"], torch.zeros(1000))  # written before refill
    state = checkpoint.load(path)
    assert state["epoch"] == 2 and torch.equal(state["opt"][0]["m"], torch.full((3, 4), 2.0))
    return second


def test_the_writer_refills_one_snapshot_instead_of_allocating_one_per_checkpoint(tmp_path):
    _one_snapshot_at_a_time(tmp_path, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_writer_holds_one_pinned_snapshot_of_device_state(tmp_path):
    snap = _one_snapshot_at_a_time(tmp_path, "cuda")
    assert snap["w"].is_pinned() and snap["opt"][0]["m"].is_pinned()
