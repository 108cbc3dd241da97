"""`python -m pipeline run-local --gpus 2`: the train task runs two gloo processes under torchrun."""

import json
from pathlib import Path

import pytest
import torch
from test_run_local import _cli, _output, _params


@pytest.mark.slow
def test_run_local_with_two_gpus_per_node_trains_with_two_gloo_ranks(tmp_path):
    proc = _cli(tmp_path, "--params", str(_params(tmp_path)), "--out", str(tmp_path / "out"), "--gpus", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads(proc.stdout)
    run = Path(results["synthetic"]["dir"])
    trained = _output(run / "train", "trained")
    out = Path(trained["uri"])
    # without a checkpoint PVC the task trains in its artifact folder: the checkpoint says who wrote it
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["aug_rng_ranks"]) == 2
    assert trained["metadata"]["epochs"] == 1
    assert results["synthetic"]["registration"]["run_id"] == trained["metadata"]["mlflow_run_id"]
    assert (
        json.loads((out / "train_result.json").read_text())["run_id"] == trained["metadata"]["mlflow_run_id"]
    )
    assert (out / "model.pt").is_file()
