"""SIGTERM to a real training process: exit 143, a complete checkpoint, an exact resume."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from fixtures.tiny_training import fit_tiny as _fit

from spherereid.training import checkpoint, termination

TESTS = str(Path(__file__).resolve().parents[1])  # for fixtures.tiny_training in the child
# A real training run whose batch iterator announces "mid" at epoch index 2, batch 1, then pauses (a slow
# step), so the parent's SIGTERM lands in the middle of an epoch; with HANG the step never ends.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from spherereid.data import batches
    from fixtures.tiny_training import fit_tiny as _fit

    original = batches.EpochBatches.__iter__

    def slow_iter(self):
        for i, item in enumerate(original(self)):
            if slow_iter.calls == 2 and i == 1:
                print("mid", flush=True)
                time.sleep(60 if sys.argv[3] == "hang" else 1.5)
            yield item
        slow_iter.calls += 1

    slow_iter.calls = 0
    batches.EpochBatches.__iter__ = slow_iter
    _fit(Path(sys.argv[2]), epochs=4)
    """
)


def _start(ckpt: Path, mode: str, grace: str = "25") -> subprocess.Popen:
    env = dict(os.environ, SPHEREREID_TERM_GRACE_S=grace)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, TESTS, str(ckpt), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _terminate_mid_epoch(proc: subprocess.Popen) -> tuple[int, str, float]:
    assert proc.stdout.readline().strip() == "mid", proc.stderr.read()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, time.monotonic() - sent


@pytest.mark.slow
def test_sigterm_mid_epoch_exits_143_and_the_next_run_resumes_bit_identically(tmp_path):
    ckpt = tmp_path / "last.pt"
    code, err, _ = _terminate_mid_epoch(_start(ckpt, "slow"))
    assert code == termination.EXIT_CODE, err
    assert "SIGTERM: stopped after epoch 3, step 2 (the epoch is discarded)" in err
    assert checkpoint.load(ckpt)["epoch"] == 2  # epochs 1-2 kept, the interrupted third discarded
    resumed = _fit(ckpt, epochs=4)
    straight = _fit(tmp_path / "straight" / "last.pt", epochs=4)
    assert resumed.resumed_from_epoch == 2
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


@pytest.mark.slow
def test_a_step_that_outlives_the_grace_period_is_cut_at_it_with_143(tmp_path):
    ckpt = tmp_path / "last.pt"
    code, _, seconds = _terminate_mid_epoch(_start(ckpt, "hang", grace="1"))
    assert code == termination.EXIT_CODE and seconds < 20  # the step would have slept 60 s
    assert checkpoint.load(ckpt)["epoch"] == 2  # the previous complete checkpoint


def test_the_grace_period_must_be_positive_seconds(monkeypatch):
    monkeypatch.setenv(termination.GRACE_ENV, "soon")
    with pytest.raises(ValueError, match="SPHEREREID_TERM_GRACE_S='soon': expected a number of seconds > 0"):
        termination.grace_seconds()
    monkeypatch.delenv(termination.GRACE_ENV)
    assert termination.grace_seconds() == 25.0
