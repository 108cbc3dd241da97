"""The whole pipeline with `run-local --runner docker` (every task in the image) gives the subprocess
runner's metrics on the same tiny config, and `mlflow models serve` of its registered model inside the image
answers a JPEG request with the embedding the host's copy of the model computes."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from container_engine import RUN_LOCAL, free_port

pytestmark = pytest.mark.container


def test_docker_runner_matches_the_subprocess_runner_on_the_tiny_set(docker_run, tmp_path):
    results = docker_run["results"]
    assert sorted(results) == ["synthetic"]
    run = docker_run["out"] / "kfp"
    task_dir = next(p for p in run.rglob("train") if (p / "executor_output.json").is_file())
    assert task_dir.stat().st_uid == 10001  # written inside the image, by its user
    trained = RUN_LOCAL._output(task_dir, "trained")["metadata"]
    assert trained["epochs"] == 1

    proc = RUN_LOCAL._cli(tmp_path, "--params", str(docker_run["params"]), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    expected = json.loads(proc.stdout)
    assert results["synthetic"]["metrics"] == expected["synthetic"]["metrics"]
    assert results["synthetic"]["metrics"]["num_queries"] == 6
    for key in ("passed_gate", "aliases", "version", "name"):
        assert results["synthetic"]["registration"][key] == expected["synthetic"]["registration"][key], key


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(64, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _post(url: str, rows: list[bytes]) -> tuple[int, str]:
    data = [[base64.b64encode(b).decode("ascii")] for b in rows]
    body = json.dumps({"dataframe_split": {"columns": ["image"], "data": data}}).encode()
    req = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait_ready(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=5) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.5)
    return False


def test_mlflow_serves_the_registered_model_inside_the_image(engine, image, docker_run, monkeypatch):
    import mlflow.pyfunc
    import pandas as pd

    root = docker_run["out"] / "kfp"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # the host's copy of the model, for the expected values
    port, name = free_port(), f"spherereid-serve-{free_port()}"
    cmd = [
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "--network",
        "host",
        "-v",
        f"{root}:{root}:rw",
        "-e",
        f"MLFLOW_TRACKING_URI={uri}",
        image,
        "mlflow",
        "models",
        "serve",
        "-m",
        "models:/spherereid-synthetic@champion",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    started = engine.cmd(*cmd, check=False)
    assert started.returncode == 0, started.stderr
    try:
        url = f"http://127.0.0.1:{port}"
        if not _wait_ready(url, timeout=180):
            pytest.fail(f"the server in the image did not answer:\n{engine.cmd('logs', name).stderr[-3000:]}")
        status, text = _post(url, [_jpeg(0), _jpeg(1)])
        assert status == 200, text
        served = np.asarray(json.loads(text)["predictions"], dtype=np.float32)
        host_model = mlflow.pyfunc.load_model("models:/spherereid-synthetic@champion")
        expected = np.asarray(host_model.predict(pd.DataFrame({"image": [_jpeg(0), _jpeg(1)]})))
        assert served.shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(served, expected, rtol=1e-4, atol=1e-5)
        bad_status, bad_text = _post(url, [b"not a jpeg"])
        assert bad_status == 400 and "row 0: not" in bad_text
    finally:
        engine.cmd("rm", "-f", name)
