"""The served model's weights are checked against the sha256 recorded when the pyfunc was logged: a
weights file altered in the local artifact store is refused by MLflow's loader (serving) and by
`--model models:/...` (export, search), naming the file and both hashes; the untouched model loads."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from test_serving import _png
from test_serving_errors import _registered_champion

from spherereid.deploy.model_source import resolve_model
from spherereid.tracking.client import local_artifact_root
from spherereid.training.saved_model import WeightsMismatch


@pytest.fixture
def registered(tmp_path, monkeypatch, make_train_dir):
    """The tiny model registered as champion in a sqlite store under tmp_path; (name, store uri)."""
    model_uri, uri, _ = _registered_champion(tmp_path, make_train_dir, monkeypatch)
    return model_uri.removeprefix("models:/").split("@")[0], uri


def _stored_weights(uri: str):
    """The weights file of the logged pyfunc in the local artifact store (there is one model)."""
    (path,) = local_artifact_root(uri).rglob("artifacts/weights.pt")
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
