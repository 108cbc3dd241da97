"""One training per output folder: a second training started on a folder that another one holds is
refused in one line naming the folder and the holder, and the first one's files stay byte-identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures.tiny_params import tiny_params

from spherereid.config import load_params
from spherereid.stages import preprocess, synthesize, train, train_lock

LOCK = ".train.lock"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny prepared set and a finished one-epoch training A on it: (params, prepared dir, out dir)."""
    root = tmp_path_factory.mktemp("lock")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        params = tiny_params(root, train={"epochs": 1, "device": "cpu"})
        p = load_params(params)
        synthesize.run(synthetic=p.synthetic, out_dir=root / "raw", workers=1)
        preprocess.run(dataset="synthetic", raw_dir=root / "raw", out_dir=root / "prepared", data=p.data)
        args = ["--params", str(params), "--prepared", str(root / "prepared"), "--out", str(root / "train")]
        assert train.main(args) == 0
    return root, root / "prepared", root / "train"


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_a_second_training_on_a_held_folder_is_refused_in_one_line_and_writes_nothing(trained):
    root, prepared, out = trained
    (root / "b").mkdir(exist_ok=True)
    other = tiny_params(root / "b", train={"epochs": 1, "device": "cpu"}, optim={"lr": 0.01})
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "SPHEREREID_LOG_LEVEL": "WARNING",
    }
    with train_lock.holding(out):  # training A is running (this process holds its folder)
        before = _files(out)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "spherereid.stages.train",
                "--params",
                str(other),
                "--prepared",
                str(prepared),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        after = _files(out)
    assert done.returncode == 2, done.stderr[-2000:]
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {out}: another training (pid {os.getpid()} on ") and LOCK in line, line
    assert after == before  # mlflow_run.json, lineage.json, model.pt, checkpoints: untouched
    assert not (out / LOCK).exists()  # released with the block


def test_a_lock_file_left_by_a_killed_holder_does_not_block(tmp_path):
    holder = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from spherereid.stages import train_lock

        with train_lock.holding(Path(sys.argv[1])):
            print("holding", flush=True)
            time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        assert (tmp_path / LOCK).read_text().startswith(f"pid {proc.pid} on ")
        with pytest.raises(train_lock.TrainOutputBusy, match=rf"pid {proc.pid} on "):
            with train_lock.holding(tmp_path):
                pass
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert (tmp_path / LOCK).is_file()  # the killed holder's file stays; the kernel dropped its lock
    with train_lock.holding(tmp_path):  # a rerun of the killed training takes it
        assert (tmp_path / LOCK).read_text().startswith(f"pid {os.getpid()} on ")
