"""On two or more GPUs (skipped otherwise): DDP over NCCL matches one process, and the train stage runs
with SyncBatchNorm under torchrun. benchmarks/ddp_scaling.py gives the throughput figures."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs at least 2 CUDA GPUs"),
]


def test_two_nccl_ranks_of_32_images_give_the_weights_of_one_gpu_of_64(tmp_path):
    from fixtures.ddp_equivalence import ddp_weights

    one = ddp_weights(tmp_path / "one.pt", 1, "cuda")
    two = ddp_weights(tmp_path / "two.pt", 2, "cuda")
    assert one["steps"] == two["steps"] == 6 and two["world_size"] == 2
    worst = max(float((one["state"][k] - two["state"][k]).abs().max()) for k in one["state"])
    assert worst < 1e-4, f"weights differ by {worst}"  # fp32 without TF32; reduction order differs


def test_train_stage_on_two_gpus_with_sync_batchnorm(tmp_path):
    yaml = pytest.importorskip("yaml")  # the stage's stack (not needed by a bare GPU image's other checks)
    pytest.importorskip("mlflow")
    from fixtures.deploy import synthetic_prepared, write_params

    prepared = synthetic_prepared(tmp_path)
    params = write_params(tmp_path / "params.yaml")
    raw = yaml.safe_load(params.read_text())
    raw["model"].update(backbone="tiny", head="D", embedding_dim=16, pretrained="none")
    raw["sampler"].update(p=4, k=2, batch_size=8)
    raw["schedule"].update(warmup_epochs=0, milestones=[])
    raw["train"].update(epochs=2, device="cuda", sync_batchnorm=True, cuda_graphs=False)
    params.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    out = tmp_path / "train"
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    argv = [
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
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "rank 1 of 2 on cuda:1 (nccl)" in done.stderr
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["epoch"] == 2
    model = torch.load(out / "model.pt", weights_only=True)
    assert any(k.endswith("running_mean") for k in model["state_dict"]), "SyncBatchNorm saves BatchNorm keys"
    assert Path(out / "train_result.json").is_file()
