"""`mlflow models serve` of the registered champion (offline, --env-manager local) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spherereid.config import RegisterConfig
from spherereid.stages import register as register_stage
from spherereid.tracking import runs as tracking

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_served_champion_returns_the_networks_unit_embeddings_and_rejects_wrong_shapes(
    tmp_path, make_train_dir, monkeypatch, server_tools
):
    import requests
    import torch

    free_port, wait_http, stop = server_tools
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    net = make_train_dir(train_dir)
    tracking.start_or_resume_run(
        train_dir / "mlflow_run.json",
        experiment="spherereid-toy",
        run_name="toy",
        params={"model.backbone": "tiny"},
        tags={"dataset": "toy"},
    )
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"rank1": 0.9, "mAP": 0.7}))
    res = register_stage.run(
        train_dir=train_dir,
        eval_dir=eval_dir,
        out_dir=tmp_path / "reg",
        register=RegisterConfig(min_rank1=0.5, min_map=0.3),
    )
    assert "champion" in res.aliases

    port = free_port()
    # mlflow starts `uvicorn` by name: the venv's bin directory must be on PATH (an activated venv)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{res.name}@champion",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", timeout=120, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{(tmp_path / 'serve.log').read_text()[-3000:]}")
        x = np.random.default_rng(0).normal(size=(2, 3, 32, 16)).astype(np.float32)
        resp = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": x.tolist()}, timeout=60)
        assert resp.status_code == 200, resp.text
        out = np.asarray(resp.json()["predictions"], dtype=np.float32)
        with torch.no_grad():
            expected = net(torch.from_numpy(x)).numpy()
        assert out.shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)

        wrong = np.zeros((2, 3, 16, 16), dtype=np.float32)
        bad = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"inputs": wrong.tolist()}, timeout=60
        )
        assert bad.status_code == 400 and "shape" in bad.text.lower()
    finally:
        stop(proc)
        log.close()


def test_to_batch_accepts_arrays_dicts_and_dataframes_and_names_the_expected_shape():
    import pandas as pd

    from spherereid.tracking.pyfunc_model import to_batch

    x = np.arange(2 * 3 * 4 * 2, dtype=np.float64).reshape(2, 3, 4, 2)
    expected = x.astype(np.float32)
    for given in (x, x.tolist(), {"images": x}, pd.DataFrame(x.reshape(2, -1))):
        out = to_batch(given, 4, 2)
        assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(out, expected)
    column = pd.DataFrame({"image": [x[0], x[1]]})
    np.testing.assert_array_equal(to_batch(column, 4, 2), expected)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, 4, 2\), got \(2, 3, 2, 4\)"):
        to_batch(x.transpose(0, 1, 3, 2), 4, 2)
    with pytest.raises(ValueError, match="one input tensor"):
        to_batch({"a": x, "b": x}, 4, 2)
