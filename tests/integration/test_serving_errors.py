"""A bad row posted to the real `mlflow models serve`: HTTP 400 whose message is the reason alone, naming
the row (no "Failed to predict data '<the request>'" with its image bytes), and a server log free of the
request payload."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from test_serving import CHAIN, _png, post_images, served

from spherereid.config import RegisterConfig
from spherereid.stages import register as register_stage
from spherereid.tracking import runs as tracking


@pytest.mark.slow
def test_a_bad_row_gets_the_reason_alone_and_no_payload_reaches_body_or_log(
    tmp_path, make_train_dir, monkeypatch, server_tools
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    make_train_dir(train_dir)
    tracking.start_or_resume_run(
        train_dir / "mlflow_run.json", experiment="spherereid-toy", run_name="toy",
        params={"model.backbone": "tiny"}, tags={"dataset": "toy"},
    )  # fmt: skip
    eval_dir.mkdir()
    (eval_dir / "metrics.json").write_text(json.dumps({"rank1": 0.9, "mAP": 0.7}))
    (eval_dir / "chain.json").write_text(json.dumps(CHAIN.to_dict()))
    res = register_stage.run(
        train_dir=train_dir, eval_dir=eval_dir, out_dir=tmp_path / "reg",
        register=RegisterConfig(min_rank1=0.5, min_map=0.3),
    )  # fmt: skip
    good = _png(np.random.default_rng(0).integers(0, 256, size=(36, 18, 3), dtype=np.uint8))
    bad = b"PAYLOAD-MARKER " * 40  # not an image; its base64 must not come back nor be logged
    marker = base64.b64encode(bad).decode("ascii")[:40]
    with served(f"models:/{res.name}@champion", uri, tmp_path, server_tools) as url:
        resp = post_images(url, [good, bad])
        empty = post_images(url, [b""])
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert body["message"].startswith("row 1: not an image") and "\n" not in body["message"]
    assert "Failed to predict" not in resp.text and marker not in resp.text
    assert marker[:20] not in resp.text and "stack_trace" not in body
    assert empty.status_code == 400 and empty.json()["message"] == "row 0: empty image (0 bytes)"
    logs = "".join(p.read_text() for p in tmp_path.glob("serve-*.log"))
    assert "POST /invocations" in logs or "invocations" in logs  # the log is the server's real one
    assert marker[:20] not in logs and "PAYLOAD-MARKER" not in logs
