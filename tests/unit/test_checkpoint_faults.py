"""Checkpoint faults: layout-keeping snapshots, the sha256 sidecar, a full disk, a corrupt last.pt, a kill
between two renames (the previous checkpoint, last.prev.pt, is kept and used)."""

import hashlib
import logging
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from fixtures.tiny_training import fit_tiny as _fit

from spherereid.config import ConfigError, TrainConfig
from spherereid.training import checkpoint


def test_snapshot_keeps_the_strides_of_a_channels_last_tensor():
    live = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    live = live.to(memory_format=torch.channels_last)
    snap = checkpoint.snapshot({"w": live})["w"]
    assert snap.stride() == (60, 1, 15, 3) == live.stride()  # NHWC strides, not the NCHW (60, 20, 5, 1)
    assert torch.equal(snap, live) and snap.data_ptr() != live.data_ptr()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_device_snapshot_is_pinned_and_keeps_channels_last_strides():
    live = torch.randn(2, 3, 4, 5, device="cuda").to(memory_format=torch.channels_last)
    snap = checkpoint.snapshot({"w": live})["w"]
    assert snap.device.type == "cpu" and snap.is_pinned() and snap.stride() == live.stride()
    assert torch.equal(snap, live.cpu())


def test_a_checkpoint_has_a_sha256_sidecar_of_its_bytes(tmp_path):
    path = tmp_path / "last.pt"
    writer = checkpoint.CheckpointWriter()
    writer.submit({"epoch": 4, "w": torch.arange(5.0)}, path)
    writer.close()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (tmp_path / "last.pt.sha256").read_text() == f"{digest}  last.pt\n"
    assert checkpoint.load(path)["epoch"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256"]  # no temp files


DISK_FULL = textwrap.dedent(
    """
    import resource, signal, sys
    import torch
    from spherereid.training import checkpoint

    path = sys.argv[1]
    checkpoint.save_atomic({"epoch": 1, "w": torch.zeros(8)}, path, checksum=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    writer = checkpoint.CheckpointWriter()
    writer.submit(checkpoint.snapshot({"epoch": 2, "w": torch.ones(200_000)}), path)  # 800 kB
    try:
        writer.close()
    except OSError as exc:
        print(type(exc).__name__, exc)
    """
)


def test_a_full_disk_keeps_the_previous_checkpoint_and_names_the_path_and_free_space(tmp_path):
    path = tmp_path / "last.pt"
    done = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"CheckpointDiskFull {path}: no space"), lines
    assert "MiB free on" in lines[0] and "previous file is intact" in lines[0]
    state = checkpoint.load(path)  # the epoch-1 file, its sidecar still matching
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.zeros(8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "last.pt.sha256"]


def test_a_truncated_or_garbage_checkpoint_is_corrupt(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"epoch": 1, "w": torch.zeros(1000)}, path, checksum=True)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(
        checkpoint.CheckpointCorrupt, match=r"last\.pt: sha256 .* does not match last\.pt\.sha256"
    ):
        checkpoint.load(path)
    bare = tmp_path / "bare.pt"  # no sidecar: the unpickler finds the damage
    bare.write_bytes(b"not a checkpoint at all")
    with pytest.raises(checkpoint.CheckpointCorrupt, match=r"bare\.pt: cannot be loaded safely"):
        checkpoint.load(bare)


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: torch.load alone might not notice
    path.write_bytes(bytes(data))


def _corrupt_after_two_epochs(ckpt, previous_too=True):
    """Two epochs (last.pt: epoch 2, last.prev.pt: epoch 1), then a flipped byte in last.pt (and in the
    previous checkpoint unless `previous_too` is False)."""
    _fit(ckpt, epochs=2)
    _flip_a_byte(ckpt)
    if previous_too:
        _flip_a_byte(ckpt.with_name("last.prev.pt"))


def test_a_corrupt_checkpoint_fails_in_one_line_offering_restart(tmp_path):
    ckpt = tmp_path / "last.pt"
    _corrupt_after_two_epochs(ckpt)
    with pytest.raises(checkpoint.CheckpointCorrupt) as err:
        _fit(ckpt, epochs=3)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{ckpt}: sha256")
    assert "last.prev.pt" in message and "train.on_corrupt_checkpoint: restart" in message
    assert ckpt.is_file() and not (tmp_path / "last.pt.corrupt").exists()  # nothing moved


def test_restart_moves_a_corrupt_checkpoint_aside_and_trains_fresh(tmp_path):
    ckpt = tmp_path / "last.pt"
    _corrupt_after_two_epochs(ckpt)
    straight = _fit(tmp_path / "fresh" / "last.pt", epochs=2)
    restarted = _fit(ckpt, epochs=2, on_corrupt="restart")
    assert restarted.resumed_from_epoch == 0 and len(restarted.history) == 2
    assert (tmp_path / "last.pt.corrupt").is_file() and (tmp_path / "last.pt.corrupt.sha256").is_file()
    assert (tmp_path / "last.prev.pt.corrupt").is_file()  # both damaged generations kept aside
    assert checkpoint.load(ckpt)["epoch"] == 2  # a fresh, valid checkpoint
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, restarted.model.state_dict()[k]), k
    assert np.isfinite([h.loss for h in restarted.history]).all()


def test_on_corrupt_checkpoint_accepts_fail_or_restart_only():
    assert TrainConfig().on_corrupt_checkpoint == "fail"
    with pytest.raises(ConfigError, match="train.on_corrupt_checkpoint must be fail\\|restart"):
        TrainConfig(on_corrupt_checkpoint="ignore")


def _same_weights(a, b):
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_corrupt_last_checkpoint_falls_back_to_the_previous_one_with_one_warning(tmp_path, caplog):
    ckpt = tmp_path / "last.pt"
    _corrupt_after_two_epochs(ckpt, previous_too=False)  # last.pt (epoch 2) damaged, epoch 1 intact
    straight = _fit(tmp_path / "straight" / "last.pt", epochs=3)
    with caplog.at_level(logging.WARNING, logger="spherereid"):
        resumed = _fit(ckpt, epochs=3)  # on_corrupt_checkpoint: fail, and yet no refusal: nothing is lost
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 3
    (warning,) = _warnings(caplog)
    assert "\n" not in warning and str(ckpt) in warning and "last.prev.pt" in warning, warning
    _same_weights(straight, resumed)
    assert (tmp_path / "last.pt.corrupt").is_file()  # kept for inspection
    assert checkpoint.load(ckpt)["epoch"] == 3 and checkpoint.load(tmp_path / "last.prev.pt")["epoch"] == 2


class Killed(BaseException):
    """The process dies at an injected point of the checkpoint writer (nothing catches a BaseException)."""


@pytest.mark.parametrize(
    ("point", "nth", "warned"),
    [
        ("renamed", 3, True),  # epoch 3's last.pt renamed, its sidecar not: last.pt fails verification
        ("previous", 2, False),  # epoch 2 being kept as last.prev.pt: last.pt (epoch 2) is still whole
    ],
)
def test_a_kill_between_two_renames_resumes_from_a_verified_checkpoint(
    tmp_path, monkeypatch, caplog, point, nth, warned
):
    seen = []

    def kill(at, path):
        if at == point:
            seen.append(path)
            if len(seen) == nth:
                raise Killed(f"{at}: {path}")

    ckpt = tmp_path / "last.pt"
    monkeypatch.setattr(checkpoint, "fault_hook", kill)
    with pytest.raises(Killed):
        _fit(ckpt, epochs=3)
    monkeypatch.setattr(checkpoint, "fault_hook", None)
    straight = _fit(tmp_path / "straight" / "last.pt", epochs=3)
    with caplog.at_level(logging.WARNING, logger="spherereid"):
        resumed = _fit(ckpt, epochs=3)
    assert resumed.resumed_from_epoch == 2  # not from scratch, not refused
    assert len(_warnings(caplog)) == (1 if warned else 0), _warnings(caplog)
    _same_weights(straight, resumed)
    assert checkpoint.load(ckpt)["epoch"] == 3


def test_the_directory_is_fsynced_after_the_renames_and_the_previous_checkpoint_kept(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        info = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(info.st_mode) else "fsync-file", info.st_ino))
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        events.append(("replace", os.path.basename(dst)))
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "last.pt"
    writer = checkpoint.CheckpointWriter(background=False)
    for epoch in (1, 2):
        writer.submit({"epoch": epoch, "w": torch.full((10,), float(epoch))}, path)
    writer.close()
    last_rename = max(i for i, e in enumerate(events) if e[0] == "replace")
    assert ("fsync-dir", tmp_path.stat().st_ino) in events[last_rename + 1 :], events
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "last.prev.pt",
        "last.prev.pt.sha256",
        "last.pt",
        "last.pt.sha256",
    ]
    assert checkpoint.load(path)["epoch"] == 2 and checkpoint.load(tmp_path / "last.prev.pt")["epoch"] == 1
