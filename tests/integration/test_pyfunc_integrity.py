"""The served model's weights are checked against the sha256 recorded when the pyfunc was logged: a
weights file altered in the local artifact store is refused by MLflow's loader (serving) and by
`--model models:/...` (export, search), naming the file and both hashes; the untouched model loads."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from spherereid.config import RegisterConfig
from spherereid.data.image_chain import ImageChain
from spherereid.deploy.model_source import resolve_model
from spherereid.deploy.weights_integrity import WeightsMismatch
from spherereid.stages import register as register_stage
from spherereid.tracking import connection
from spherereid.tracking import runs as tracking

CHAIN = ImageChain(stored_size=(36, 18), input_size=(32, 16), flip=True)


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def registered(tmp_path, monkeypatch, make_train_dir):
    """The tiny model registered as champion in a sqlite store under tmp_path; (name, store uri)."""
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
    return res.name, uri


def _stored_weights(uri: str):
    """The weights file of the logged pyfunc in the local artifact store (there is one model)."""
    (path,) = connection.local_artifact_root(uri).rglob("artifacts/weights.pt")
    return path


def test_tampered_weights_in_the_artifact_store_are_refused_and_untouched_ones_load(registered):
    import mlflow
    import torch

    name, uri = registered
    weights = _stored_weights(uri)
    config = json.loads((weights.parent / "config.json").read_text())
    recorded = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert config["weights_sha256"] == recorded  # recorded when logged

    png = _png(np.random.default_rng(0).integers(0, 256, size=(36, 18, 3), dtype=np.uint8))
    untouched = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame({"image": [png]}))
    assert untouched.shape == (1, 16)
    assert resolve_model(f"models:/{name}@champion").version == 1

    # one weight changed, the file still a valid state_dict: without the check it would load silently
    state = torch.load(weights, weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[key].view(-1)[0] += 1.0
    shutil.copy(weights, weights.with_suffix(".orig"))
    torch.save(state, weights)
    actual = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert actual != recorded

    expected_message = rf"weights\.pt: sha256 {actual} differs from {recorded} recorded in config\.json"
    with pytest.raises(WeightsMismatch, match=expected_message) as served:
        mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert "\n" not in str(served.value) and "artifact store" in str(served.value)
    with pytest.raises(WeightsMismatch, match=expected_message):
        resolve_model(f"models:/{name}@champion")

    shutil.copy(weights.with_suffix(".orig"), weights)  # the logged bytes back: it loads again
    again = mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(pd.DataFrame({"image": [png]}))
    np.testing.assert_array_equal(again, untouched)
    assert re.fullmatch(r"[0-9a-f]{64}", recorded)
