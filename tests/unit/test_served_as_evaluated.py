"""Served = evaluated, in each extraction precision: the pyfunc (built by load_context from its artifacts)
on raw JPEG bytes gives the evaluate stage's features of the same files (decoded as preprocess stores
them, extracted by the stages' own inference.extract_splits), to 1e-4, with the chain in bf16 and in fp32."""

from __future__ import annotations

import io
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from spherereid.config import EvaluateConfig
from spherereid.data.image_chain import ImageChain
from spherereid.data.imageio import load_image
from spherereid.data.manifest import SplitData
from spherereid.deploy.pyfunc_flavor import ReIDEmbeddingModel
from spherereid.inference import extract_splits
from spherereid.modeling.net import ReIDNet
from spherereid.training import saved_model

TINY = {"backbone": "tiny", "head": "D", "embedding_dim": 16, "last_stride": 1, "dropout": 0.5}
STORED, INPUT = (36, 18), (32, 16)
# client crops of several sizes: the stored-size resize runs for most of them, as for camera crops
SIZES = [(36, 18), (80, 40), (50, 30), (29, 14), (120, 64)] * 3


def _jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(JPEG bytes, their files) of random crops of SIZES."""
    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    data = [_jpeg(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)) for size in SIZES]
    paths = []
    for i, blob in enumerate(data):
        paths.append(root / f"{i}.jpg")
        paths[-1].write_bytes(blob)
    return data, paths


@pytest.fixture(scope="module")
def model_pt(tmp_path_factory):
    torch.manual_seed(0)
    net = ReIDNet(**TINY, pretrained="none")
    with torch.no_grad():  # non-trivial BN statistics, so an eval-mode slip would show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("train") / "model.pt"
    saved_model.save_model(net, 7, path)
    return path


def _served(tmp_path, model_pt, chain: ImageChain) -> ReIDEmbeddingModel:
    """The pyfunc as `mlflow models serve` loads it: load_context on the logged artifacts' contents."""
    artifacts = saved_model.write_pyfunc_artifacts(saved_model.load_model(model_pt), 16, chain, tmp_path)
    model = ReIDEmbeddingModel()
    model.load_context(SimpleNamespace(artifacts=artifacts))
    return model


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_served_embeddings_equal_the_evaluated_features(tmp_path, files, model_pt, precision):
    data, paths = files
    chain = ImageChain(stored_size=STORED, input_size=INPUT, flip=True, precision=precision)
    stored = np.stack([load_image(p, *STORED)[0] for p in paths])  # what preprocess writes
    n = len(stored)
    split = SplitData(stored, np.arange(n), np.zeros(n, dtype=np.int64), np.arange(n), ["toy"] * n)
    cfg = EvaluateConfig(precision=precision, batch_size=4)
    load = partial(saved_model.load_model, model_pt)
    evaluated, _ = extract_splits(load, chain, split, split, cfg.batch_size, torch.device("cpu"))
    served = _served(tmp_path, model_pt, chain).predict(None, pd.DataFrame({"image": data}))
    assert served.dtype == np.float32 and served.shape == evaluated.shape == (n, 16)
    assert float(np.abs(served - evaluated).max()) <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, rtol=1e-5)


def test_the_two_precisions_really_differ(tmp_path, files, model_pt):
    """The bf16 case above is not fp32 under another name: the embeddings move by more than 1e-4."""
    frame = pd.DataFrame({"image": files[0]})
    chains = {p: ImageChain(stored_size=STORED, input_size=INPUT, precision=p) for p in ("bf16", "fp32")}
    out = {p: _served(tmp_path, model_pt, chain).predict(None, frame) for p, chain in chains.items()}
    assert float(np.abs(out["bf16"] - out["fp32"]).max()) > 1e-4
