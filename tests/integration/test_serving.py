"""`mlflow models serve` of the registered champion (offline, --env-manager local) on 127.0.0.1: clients
post image bytes, get the evaluate stage's embeddings; bad rows get HTTP 400 naming the row."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.stages import register as register_stage
from spherereid.tracking import runs as tracking

BIN = Path(sys.executable).parent
CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)


@contextmanager
def served(model_uri: str, tracking_uri: str, workdir: Path, server_tools) -> Iterator[str]:
    """`mlflow models serve -m model_uri --env-manager local` on a free port; yields its base URL."""
    with served_process(model_uri, tracking_uri, workdir, server_tools) as (url, _):
        yield url


@contextmanager
def served_process(
    model_uri: str, tracking_uri: str, workdir: Path, server_tools
) -> Iterator[tuple[str, subprocess.Popen]]:
    """As `served`, yielding (base URL, the `mlflow models serve` process: uvicorn is its child)."""
    free_port, wait_http, stop = server_tools
    port = free_port()
    # mlflow starts `uvicorn` by name: the venv's bin directory must be on PATH (an activated venv)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cmd = [
        str(BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    log_path = workdir / f"serve-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", timeout=180, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{log_path.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)
        log.close()


def post_images(url: str, images: list[bytes], column: str = "image"):
    """POST rows of base64 image bytes as dataframe_split; returns the requests response."""
    import requests

    rows = [[base64.b64encode(b).decode("ascii")] for b in images]
    body = {"dataframe_split": {"columns": [column], "data": rows}}
    return requests.post(f"{url}/invocations", json=body, timeout=120)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_served_champion_embeds_posted_images_as_evaluated_and_rejects_bad_rows_with_400(
    tmp_path, make_train_dir, monkeypatch, server_tools
):
    from spherereid.inference import extract_features

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
    (eval_dir / "chain.json").write_text(json.dumps(CHAIN.to_dict()))
    res = register_stage.run(
        train_dir=train_dir,
        eval_dir=eval_dir,
        out_dir=tmp_path / "reg",
        register=RegisterConfig(min_rank1=0.5, min_map=0.3),
    )
    assert "champion" in res.aliases

    images = np.random.default_rng(0).integers(0, 256, size=(2, 36, 18, 3), dtype=np.uint8)
    expected = extract_features(net, images, CHAIN.eval_transform(), flip=True, progress=False)
    with served(f"models:/{res.name}@champion", uri, tmp_path, server_tools) as url:
        resp = post_images(url, [_png(im) for im in images])
        assert resp.status_code == 200, resp.text
        out = np.asarray(resp.json()["predictions"], dtype=np.float32)
        assert out.shape == (2, 16)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-6)

        not_image = post_images(url, [_png(images[0]), b"this is not an image"])
        assert not_image.status_code == 400 and "row 1: not an image" in not_image.text
        empty = post_images(url, [b""])
        assert empty.status_code == 400 and "row 0: empty image" in empty.text
        wrong_column = post_images(url, [_png(images[0])], column="img")
        assert wrong_column.status_code == 400 and "image" in wrong_column.text
        again = post_images(url, [_png(images[1])])  # the server keeps serving
        assert again.status_code == 200
        np.testing.assert_allclose(again.json()["predictions"][0], expected[1], rtol=1e-4, atol=1e-6)
