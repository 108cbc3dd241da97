"""extract_features: batched, flip-averaged, L2-normalised float32 embeddings."""

import numpy as np
import torch
import torch.nn.functional as F

from spherereid.data.transforms import EvalTransform
from spherereid.inference import extract_features
from spherereid.modeling.net import ReIDNet


def _setup():
    torch.manual_seed(0)
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=8, last_stride=1, dropout=0.5).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(7, 20, 10, 3), dtype=np.uint8)
    return net, images, EvalTransform(size=(16, 8))


def test_features_equal_an_independent_computation_with_flip_averaging():
    net, images, tf = _setup()
    feats = extract_features(net, images, tf, batch_size=3, flip=True, progress=False)
    x = tf(torch.from_numpy(images))
    with torch.no_grad():
        expected = F.normalize(net(x) + net(x.flip(-1)), dim=1).numpy()
    assert feats.dtype == np.float32 and feats.shape == (7, 8)
    np.testing.assert_allclose(feats, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_without_flip_and_batching_does_not_change_results():
    net, images, tf = _setup()
    one = extract_features(net, images, tf, batch_size=1, flip=False, progress=False)
    all_at_once = extract_features(net, images, tf, batch_size=64, flip=False, progress=False)
    np.testing.assert_allclose(one, all_at_once, atol=1e-5)
    with torch.no_grad():
        expected = net(tf(torch.from_numpy(images))).numpy()
    np.testing.assert_allclose(one, expected, atol=1e-5)
    flipped = extract_features(net, images, tf, batch_size=64, flip=True, progress=False)
    assert not np.allclose(flipped, one, atol=1e-4)


def test_model_is_left_in_eval_mode_and_dropout_does_not_leak():
    net, images, tf = _setup()
    net.train()
    a = extract_features(net, images, tf, flip=False, progress=False)
    b = extract_features(net, images, tf, flip=False, progress=False)
    np.testing.assert_array_equal(a, b)
    assert not net.training


def _tiny_setup():
    import numpy as np

    from spherereid.data.transforms import EvalTransform
    from spherereid.modeling.net import ReIDNet

    torch.manual_seed(0)
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=8, last_stride=1, dropout=0.0, pretrained="none")
    images = np.random.default_rng(0).integers(0, 256, (6, 20, 10, 3), dtype=np.uint8)
    return net, images, EvalTransform(size=(16, 8))


def test_extraction_on_the_cpu_honours_a_bf16_request():
    import numpy as np

    from spherereid.inference import extract_features

    net, images, tf = _tiny_setup()
    fp32 = extract_features(net, images, tf, batch_size=4, progress=False)
    bf16 = extract_features(net, images, tf, batch_size=4, precision="bf16", progress=False)
    assert fp32.dtype == bf16.dtype == np.float32
    assert not np.array_equal(fp32, bf16)  # bf16 autocast ran: rounding differs from fp32
    cosine = (fp32 * bf16).sum(axis=1)  # both L2-normalised
    assert cosine.min() > 0.99


def test_extraction_leaves_ordinary_trainable_parameters():
    from spherereid.inference import extract_features

    net, images, tf = _tiny_setup()
    extract_features(net, images, tf, batch_size=4, progress=False)
    assert not any(p.is_inference() for p in net.parameters())
    assert not any(b.is_inference() for b in net.buffers())
    net.train()
    x = torch.randn(4, 3, 16, 8)
    net(x).sum().backward()  # fails on inference tensors ("Inference tensors cannot be saved for backward")
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
