"""Classification losses on the embedding: Sphere Softmax (the paper's) and plain softmax (ablation).

Both take features (B, D) and int64 labels (B,) in 0..num_classes-1 and return
`(loss scalar, logits (B, num_classes))`; the logits are those the cross-entropy saw. A loss whose class
attribute `features_before_l2` is True (the softmax baseline) is given the head's output before the
network's L2 normalisation during training (`ReIDNet.forward(x, normalise=False)`, chosen by
`training.step.TrainStep`); the Sphere Softmax gets the normalised embedding. Evaluation always uses the
normalised embedding.
"""

from __future__ import annotations

import logging
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

LOSSES = ("sphere", "softmax")


def validate_labels(labels: torch.Tensor, num_classes: int) -> None:
    """int64 (N,) labels in 0..num_classes-1, else ValueError. Reads the values (a host sync on a GPU):
    the trainer calls it once per dataset and turns the per-batch check of the losses off
    (`check_labels = False`)."""
    labels = torch.as_tensor(labels)
    _check_label_layout(labels)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1}, got {int(labels.min())}..{int(labels.max())}; "
            "num_classes must be the number of training identities"
        )


def _check_label_layout(labels: torch.Tensor) -> None:
    if labels.dtype != torch.int64 or labels.dim() != 1:
        raise ValueError(f"labels must be int64 of shape (B,), got {labels.dtype} {tuple(labels.shape)}")


def _check_labels(loss: nn.Module, labels: torch.Tensor) -> None:
    """Layout always (no sync); values only while `loss.check_labels` (the trainer validated them)."""
    _check_label_layout(labels)
    if loss.check_labels:
        validate_labels(labels, cast(int, loss.num_classes))


class SphereSoftmaxLoss(nn.Module):
    """Sphere Softmax (Fan et al. 2018, arXiv 1807.00537, Sec. 3, "Sphere Softmax").

    With x_i the embedding of sample i, W_j the weight vector of class j and
    cos(theta_ij) = W_j^T x_i / (||W_j|| ||x_i||), the paper's loss is

        L = -1/B * sum_i log( exp(s cos(theta_{i,y_i})) / sum_j exp(s cos(theta_ij)) )

    i.e. softmax cross-entropy over the logits s * cos(theta) with both x and W L2-normalised (the
    temperature / scale s is a hyper-parameter; 14 in a known reimplementation). The loss depends only
    on angles, so it is invariant to the norm of the embedding. With `margin` m > 0 the target logit
    becomes s * (cos(theta_{i,y_i}) - m) (additive cosine margin); m = 0 is the paper's loss.
    Computed in float32 even under autocast. Weight: (num_classes, embedding_dim).
    """

    features_before_l2 = False  # trained on ReIDNet's L2-normalised embedding, as evaluated

    def __init__(self, embedding_dim: int, num_classes: int, scale: float = 14.0, margin: float = 0.0):
        super().__init__()
        if embedding_dim < 1 or num_classes < 1:
            raise ValueError(
                f"embedding_dim and num_classes must be >= 1, got {embedding_dim}, {num_classes}"
            )
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}; check loss.scale")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"margin must be in [0, 1), got {margin}; check loss.margin")
        self.embedding_dim, self.num_classes = int(embedding_dim), int(num_classes)
        self.scale, self.margin = float(scale), float(margin)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self.check_labels = True  # per-batch value check; off when the dataset was validated once

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, D) -> cos(theta) (B, C) between each embedding and each class weight, in float32."""
        x = F.normalize(embeddings.float(), dim=1)
        w = F.normalize(self.weight.float(), dim=1)
        return x @ w.t()

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """embeddings (B, D), labels (B,) int64 -> (mean loss, logits (B, C) = s * cos with the margin)."""
        _check_labels(self, labels)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            logits = self.scale * self.cosine(embeddings)
            if self.margin > 0:
                onehot = F.one_hot(labels, self.num_classes).to(logits.dtype)
                logits = logits - (self.scale * self.margin) * onehot
            return F.cross_entropy(logits, labels), logits

    def extra_repr(self) -> str:
        return (
            f"embedding_dim={self.embedding_dim}, num_classes={self.num_classes}, "
            f"scale={self.scale}, margin={self.margin}"
        )


class SoftmaxLoss(nn.Module):
    """Plain softmax cross-entropy (the ablation's baseline): a linear classifier with bias on the head's
    output BEFORE the L2 normalisation, as torchreid's softmax engine and the strong ReID baselines train it;
    the network is evaluated with the normalised embedding.

    logits = f W^T + b, L = cross_entropy(logits, y), f the un-normalised feature. Weight (num_classes,
    embedding_dim), bias (C,). On the unit-norm embedding instead, and without a scale, the logits are bounded
    by the weight norms (|W_j^T x| <= ||W_j||, tiny from this initialisation) and training stalls near chance
    (as NormFace, Wang et al. 2017, shows): that is not a fair baseline, and it is not built.
    """

    features_before_l2 = True  # TrainStep passes ReIDNet's output before the L2 normalisation

    def __init__(self, embedding_dim: int, num_classes: int):
        super().__init__()
        if embedding_dim < 1 or num_classes < 1:
            raise ValueError(
                f"embedding_dim and num_classes must be >= 1, got {embedding_dim}, {num_classes}"
            )
        self.num_classes = int(num_classes)
        self.check_labels = True  # per-batch value check; off when the dataset was validated once
        self.classifier = nn.Linear(embedding_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, D) (before the L2 normalisation), labels (B,) int64 -> (mean loss, logits (B, C))."""
        _check_labels(self, labels)
        logits = self.classifier(features)
        return F.cross_entropy(logits.float(), labels), logits


def build_loss(type: str, embedding_dim: int, num_classes: int, scale: float, margin: float) -> nn.Module:
    """The loss module for `type` ("sphere" | "softmax"); softmax ignores `scale` and needs margin 0."""
    if type == "sphere":
        return SphereSoftmaxLoss(embedding_dim, num_classes, scale=scale, margin=margin)
    if type == "softmax":
        if margin != 0:
            raise ValueError(f"loss.margin ({margin}) only applies to loss.type sphere; set it to 0")
        log.debug("softmax loss: loss.scale (%s) is not used", scale)
        return SoftmaxLoss(embedding_dim, num_classes)
    raise ValueError(f"unknown loss type '{type}' (known: {', '.join(LOSSES)}); check loss.type")
