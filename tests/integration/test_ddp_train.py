"""The train stage under torchrun with 2 gloo ranks on the tiny synthetic set: a real run that evaluates
and registers, and a run that loses a rank mid-epoch, stops cleanly, and resumes when restarted."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from fixtures.deploy import synthetic_prepared, write_params

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _params(tmp_path: Path, epochs: int) -> Path:
    path = write_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(path.read_text())
    raw["model"].update(backbone="tiny", head="D", embedding_dim=16, pretrained="none")
    raw["sampler"].update(p=4, k=2, batch_size=8)  # 12 identities: 3 global batches per epoch, 2 x 4 per rank
    raw["schedule"].update(warmup_epochs=0, milestones=[])
    raw["train"].update(epochs=epochs, device="cpu")
    raw["evaluate"].update(max_rank=5, batch_size=16)
    raw["register"].update(min_rank1=0.0, min_map=0.0)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {
        **env,
        "OMP_NUM_THREADS": "1",
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "SPHEREREID_DIST_TIMEOUT_S": "60",
    }


def _torchrun(params: Path, prepared: Path, out: Path) -> list[str]:
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    return [
        *run,
        "-m",
        "spherereid.stages.train",
        "--params",
        str(params),
        "--prepared",
        str(prepared),
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return synthetic_prepared(tmp_path_factory.mktemp("ddp"))


def test_two_ranks_train_then_the_model_evaluates_and_registers(prepared, tmp_path):
    params, out, env = _params(tmp_path, epochs=3), tmp_path / "train", _env(tmp_path)
    done = subprocess.run(
        _torchrun(params, prepared, out), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "rank 1 of 2 on cpu (gloo)" in done.stderr
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["world_size"] == 2 and len(ckpt["aug_rng_ranks"]) == 2
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    # 12 identities // P=4 = 3 steps of 8 images per epoch, counted over both ranks
    assert all(float(r["images_per_second"]) > 0 for r in rows)
    import mlflow

    from spherereid.tracking import runs

    # a client of its own: a global mlflow.set_tracking_uri would leak into later tests of this process
    store = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    ref = runs.read_run_ref(out / "mlflow_run.json")
    losses = store.get_metric_history(ref.run_id, "loss")
    assert [m.step for m in losses] == [0, 1, 2], "rank 0 alone logs: one value per epoch"
    assert [round(m.value, 6) for m in losses] == [round(float(r["loss"]), 6) for r in rows]
    experiment = store.get_experiment_by_name("spherereid-synthetic")
    assert len(store.search_runs([experiment.experiment_id])) == 1, "one MLflow run, not two"
    ev, reg = tmp_path / "ev", tmp_path / "reg"
    stages = {
        "evaluate": ["--prepared", str(prepared), "--train", str(out), "--out", str(ev)],
        "register": ["--train", str(out), "--eval", str(ev), "--out", str(reg)],
    }
    for stage, extra in stages.items():
        argv = [sys.executable, "-m", f"spherereid.stages.{stage}", "--params", str(params), *extra]
        step = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert step.returncode == 0, step.stderr[-3000:]
    assert (ev / "metrics.json").is_file() and any(reg.iterdir())
    # a changed process count resumes too: one process continues the 2-rank checkpoint for a 4th epoch
    more = _params(tmp_path, epochs=4)
    argv = [
        sys.executable,
        "-m",
        "spherereid.stages.train",
        "--params",
        str(more),
        "--prepared",
        str(prepared),
        "--out",
        str(out),
    ]
    alone = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stderr[-3000:]
    assert "resuming from" in alone.stderr and "after epoch 3" in alone.stderr
    assert "written by 2 processes and training resumes with 1" in alone.stderr
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 4


def _rank_pids(root: psutil.Process) -> dict[int, int]:
    found = {}
    for child in root.children(recursive=True):
        try:
            rank = child.environ().get("RANK")
        except psutil.Error:
            continue
        if rank is not None and "spherereid.stages.train" in " ".join(child.cmdline()):
            found[int(rank)] = child.pid
    return found


def test_killing_one_rank_mid_epoch_stops_the_run_and_a_restart_resumes(prepared, tmp_path):
    params, out, env = _params(tmp_path, epochs=40), tmp_path / "train", _env(tmp_path)
    ckpt = out / "checkpoints" / "last.pt"
    proc = subprocess.Popen(
        _torchrun(params, prepared, out),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not ckpt.is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ckpt.is_file(), "the first epoch's checkpoint never appeared"
        ranks = _rank_pids(psutil.Process(proc.pid))
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)  # stops: no rank waits forever for the dead one
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert not psutil.pid_exists(ranks[0]) or psutil.Process(ranks[0]).status() == psutil.STATUS_ZOMBIE
    saved = torch.load(ckpt, weights_only=True)["epoch"]
    assert 1 <= saved < 40
    # restart: the same command resumes from the checkpoint and finishes
    params2 = _params(tmp_path, epochs=saved + 2)  # a short finish: the same config, more epochs than saved
    done = subprocess.run(
        _torchrun(params2, prepared, out), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"resuming from {ckpt} after epoch {saved}" in done.stderr
    assert torch.load(ckpt, weights_only=True)["epoch"] == saved + 2


def test_a_non_finite_loss_stops_every_rank_with_the_same_message(prepared, tmp_path):
    params, out, env = _params(tmp_path, epochs=5), tmp_path / "train", _env(tmp_path)
    raw = yaml.safe_load(params.read_text())
    raw["loss"]["scale"], raw["optim"]["lr"] = 1e30, 1e30  # the first step blows the weights up: NaN
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = subprocess.run(
        _torchrun(params, prepared, out), env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and errors[0] == errors[1], errors  # both ranks, one message, no hang
    assert "loss became non-finite at epoch 0" in errors[0]
    assert not (out / "checkpoints" / "last.pt").exists(), "a NaN epoch is never checkpointed"
