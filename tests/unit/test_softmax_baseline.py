"""The ablation's softmax baseline: a linear classifier (with bias) on the head's output before the L2
normalisation, trained through the same TrainStep as the Sphere Softmax, evaluated on the normalised
embedding. On the unit-norm embedding without a scale its logits were bounded and training stalled."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from fixtures.tiny_training import fit_config, identity_patterns
from torch import nn

from spherereid.config import (
    LossConfig,
    ModelConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
    TransformConfig,
)
from spherereid.modeling.losses import build_loss
from spherereid.modeling.net import ReIDNet
from spherereid.training.step import takes_features_before_l2
from spherereid.training.trainer import fit


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from intra-op threads; one thread also makes the run the same on any
    machine (and fast on a busy one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_softmax_cell_trains_well_above_chance_on_the_tiny_set(tmp_path, one_thread):
    ids = 64  # chance: 1/64 = 1.6%, initial loss ln 64 = 4.16
    images, labels = identity_patterns(ids=ids, per_id=8, noise=60.0)
    config = dataclasses.replace(
        fit_config(40),
        model=ModelConfig(
            backbone="tiny", head="D", embedding_dim=64, last_stride=1, dropout=0.5, pretrained="none"
        ),
        loss=LossConfig(type="softmax", scale=14.0, margin=0.0),
        sampler=SamplerConfig(p=8, k=4, batch_size=32),  # 8 steps an epoch
        schedule=ScheduleConfig(warmup_start_lr=1e-3, warmup_epochs=0, milestones=(), gamma=0.1),
        transform=TransformConfig(
            resize_height=16, resize_width=8, crop_height=16, crop_width=8, flip_prob=0.0, random_erasing=0.0
        ),
        train=TrainConfig(epochs=40, device="cpu", checkpoint_every=40),
    )
    result = fit(
        images=images,
        labels=labels,
        num_classes=ids,
        checkpoint_path=tmp_path / "last.pt",
        config=config,
        progress=False,
    )
    last = result.history[-5:]
    accuracy = sum(h.accuracy for h in last) / len(last)
    # measured: 0.68 and loss 1.94 here; the classifier on the unit-norm embedding: 0.40 and 3.71 (its
    # logits are bounded by the weight norms, so the loss hardly leaves ln 64)
    assert accuracy >= 0.55, [round(h.accuracy, 3) for h in result.history]
    assert result.history[-1].loss < math.log(ids) - 1.0, [round(h.loss, 3) for h in result.history]


def test_the_network_returns_the_feature_before_the_l2_only_when_asked():
    torch.manual_seed(0)
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=8).eval()
    x = torch.randn(5, 3, 32, 16)
    with torch.no_grad():
        embedding, feature = net(x), net(x, normalise=False)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(5))
    assert not torch.allclose(feature.norm(dim=1), torch.ones(5), atol=0.1)  # BN output: norm ~ sqrt(8)
    assert torch.equal(F.normalize(feature, dim=1), embedding)  # the evaluated embedding is its direction


class _Wrapper(nn.Module):
    """As DistributedDataParallel holds a module: `.module`."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module


def test_the_train_step_gives_softmax_the_feature_and_sphere_the_normalised_embedding():
    softmax = build_loss("softmax", embedding_dim=8, num_classes=3, scale=14.0, margin=0.0)
    sphere = build_loss("sphere", embedding_dim=8, num_classes=3, scale=14.0, margin=0.0)
    assert takes_features_before_l2(softmax) and takes_features_before_l2(_Wrapper(softmax))
    assert not takes_features_before_l2(sphere) and not takes_features_before_l2(_Wrapper(sphere))
    assert isinstance(softmax.classifier, nn.Linear) and softmax.classifier.bias is not None
