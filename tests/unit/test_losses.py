"""Sphere Softmax against a hand computation; margin; norm invariance; the softmax baseline."""

import math

import pytest
import torch
import torch.nn.functional as F

from spherereid.modeling.losses import SoftmaxLoss, SphereSoftmaxLoss, build_loss


def _hand_cosine(x, w):
    """cos(theta) by explicit norms, no F.normalize: (B, D), (C, D) -> (B, C)."""
    xn = x / x.pow(2).sum(dim=1, keepdim=True).sqrt()
    wn = w / w.pow(2).sum(dim=1, keepdim=True).sqrt()
    return xn @ wn.t()


def _setup(b=6, d=5, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=torch.float64).float()
    y = torch.randint(c, (b,), generator=g)
    return x, y


def test_sphere_softmax_equals_cross_entropy_over_scaled_cosine():
    x, y = _setup()
    loss_fn = SphereSoftmaxLoss(5, 4, scale=14.0)
    loss, logits = loss_fn(x, y)
    expected_logits = 14.0 * _hand_cosine(x, loss_fn.weight.detach())
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, F.cross_entropy(expected_logits, y), rtol=1e-5, atol=1e-6)


def test_sphere_softmax_two_classes_by_hand():
    # x at 0 degrees to class 0 and 90 degrees to class 1 (weights deliberately not unit length)
    loss_fn = SphereSoftmaxLoss(2, 2, scale=2.0)
    with torch.no_grad():
        loss_fn.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 0.5]]))
    loss, logits = loss_fn(torch.tensor([[5.0, 0.0]]), torch.tensor([1]))
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0]]))
    # -log(e^0 / (e^2 + e^0)) = log(1 + e^2)
    assert float(loss.detach()) == pytest.approx(math.log(1 + math.e**2), rel=1e-6)


def test_sphere_softmax_is_invariant_to_embedding_norm():
    x, y = _setup()
    loss_fn = SphereSoftmaxLoss(5, 4, scale=14.0)
    loss1, logits1 = loss_fn(x, y)
    loss2, logits2 = loss_fn(7.3 * x, y)
    torch.testing.assert_close(loss1, loss2)
    torch.testing.assert_close(logits1, logits2)


def test_margin_subtracts_scale_times_margin_from_the_target_logit_only():
    x, y = _setup()
    plain = SphereSoftmaxLoss(5, 4, scale=14.0, margin=0.0)
    margined = SphereSoftmaxLoss(5, 4, scale=14.0, margin=0.35)
    margined.load_state_dict(plain.state_dict())
    _, logits0 = plain(x, y)
    loss_m, logits_m = margined(x, y)
    diff = logits0 - logits_m
    target = F.one_hot(y, 4).bool()
    torch.testing.assert_close(diff[target], torch.full((6,), 14.0 * 0.35))
    torch.testing.assert_close(diff[~target], torch.zeros(18))
    hand = 14.0 * _hand_cosine(x, plain.weight.detach()) - 14.0 * 0.35 * F.one_hot(y, 4)
    torch.testing.assert_close(loss_m, F.cross_entropy(hand, y), rtol=1e-5, atol=1e-6)


def test_sphere_gradients_reach_weight_and_embedding():
    x, y = _setup()
    x.requires_grad_(True)
    loss_fn = SphereSoftmaxLoss(5, 4)
    loss, _ = loss_fn(x, y)
    loss.backward()
    assert loss_fn.weight.grad is not None and loss_fn.weight.grad.abs().sum() > 0
    # the loss only depends on x's direction: its gradient is orthogonal to x
    torch.testing.assert_close((x.grad * x).sum(dim=1), torch.zeros(6), atol=1e-6, rtol=0)


def test_softmax_loss_is_linear_plus_cross_entropy():
    x, y = _setup()
    loss_fn = SoftmaxLoss(5, 4)
    with torch.no_grad():
        loss_fn.classifier.weight.copy_(torch.arange(20.0).view(4, 5) / 10)
        loss_fn.classifier.bias.copy_(torch.tensor([0.5, -1.0, 0.0, 2.0]))
    loss, logits = loss_fn(x, y)
    expected = x @ (torch.arange(20.0).view(4, 5) / 10).t() + torch.tensor([0.5, -1.0, 0.0, 2.0])
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(loss, F.cross_entropy(expected, y))


def test_build_loss_and_errors():
    sphere = build_loss("sphere", embedding_dim=8, num_classes=3, scale=10.0, margin=0.1)
    assert isinstance(sphere, SphereSoftmaxLoss)
    assert sphere.weight.shape == (3, 8) and sphere.scale == 10.0 and sphere.margin == 0.1
    assert isinstance(
        build_loss("softmax", embedding_dim=8, num_classes=3, scale=14.0, margin=0.0), SoftmaxLoss
    )
    with pytest.raises(ValueError, match="loss.type"):
        build_loss("arcface", embedding_dim=8, num_classes=3, scale=14.0, margin=0.0)
    with pytest.raises(ValueError, match="loss.margin"):
        build_loss("softmax", embedding_dim=8, num_classes=3, scale=14.0, margin=0.2)
    with pytest.raises(ValueError, match="0..2"):
        sphere(torch.randn(2, 8), torch.tensor([0, 3]))
