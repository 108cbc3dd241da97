"""The SphereReID network: a backbone trunk plus one of the paper's embedding heads A-D.

Heads (Fan et al. 2018, Sec. 3 and the ablation over networks A-D), all ending in L2 normalisation:
  A: global average pooling                                  -> C (backbone channels, 2048 for ResNet-50)
  B: GAP -> FC(C, D)                                          -> D
  C: GAP -> FC(C, D) -> BN1d(D)                               -> D
  D: GAP -> BN1d(C) -> Dropout(p) -> FC(C, D) -> BN1d(D)      -> D   (the paper's SphereReID)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import build_backbone

HEADS = ("A", "B", "C", "D")


def _bn(dim: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    return bn


def _fc(cin: int, cout: int) -> nn.Linear:
    fc = nn.Linear(cin, cout)
    nn.init.kaiming_normal_(fc.weight, mode="fan_out")
    nn.init.zeros_(fc.bias)
    return fc


def build_head(head: str, in_dim: int, embedding_dim: int, dropout: float) -> tuple[nn.Module, int]:
    """The layers after global average pooling for `head` -> (module (B, in_dim) -> (B, out), out)."""
    if head == "A":
        return nn.Identity(), in_dim
    if head == "B":
        return _fc(in_dim, embedding_dim), embedding_dim
    if head == "C":
        return nn.Sequential(_fc(in_dim, embedding_dim), _bn(embedding_dim)), embedding_dim
    if head == "D":
        layers = [_bn(in_dim), nn.Dropout(dropout), _fc(in_dim, embedding_dim), _bn(embedding_dim)]
        return nn.Sequential(*layers), embedding_dim
    raise ValueError(f"unknown head '{head}' (known: {', '.join(HEADS)}); check model.head")


class ReIDNet(nn.Module):
    """Images (B, 3, H, W) -> L2-normalised float32 embeddings (B, embedding_dim) (the head's output before
    the normalisation with `forward(x, normalise=False)`, for the softmax baseline's training).

    `embedding_dim` (the attribute) is the real output size: the backbone's channels for head A,
    the `embedding_dim` argument otherwise. `constructor_args` holds the keyword arguments with
    `pretrained="none"`, enough to rebuild the network before loading a state_dict.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        head: str = "D",
        embedding_dim: int = 1024,
        last_stride: int = 1,
        dropout: float = 0.5,
        pretrained: str = "none",
    ):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head '{head}' (known: {', '.join(HEADS)}); check model.head")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim}; check model.embedding_dim")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}; check model.dropout")
        self.constructor_args: dict[str, Any] = {
            "backbone": backbone,
            "head": head,
            "embedding_dim": int(embedding_dim),
            "last_stride": int(last_stride),
            "dropout": float(dropout),
            "pretrained": "none",
        }
        self.backbone, channels = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
        self.head, self.embedding_dim = build_head(head, channels, embedding_dim, dropout)
        self.feature_channels = channels

    @classmethod
    def from_saved(cls, constructor: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> ReIDNet:
        """A trained network from its saved constructor arguments and weights, in eval mode. No pretrained
        weights are fetched: the state_dict replaces them."""
        net = cls(**{**constructor, "pretrained": "none"})
        net.load_state_dict(state_dict)
        return net.eval()

    def forward(self, x: torch.Tensor, normalise: bool = True) -> torch.Tensor:
        """(B, 3, H, W) -> (B, embedding_dim) float32, each row of unit L2 norm: the embedding every
        evaluation, export and search uses. `normalise=False` (training only: the softmax baseline's
        classifier, see `losses.SoftmaxLoss`) returns the head's output before the L2 normalisation."""
        fmap = self.backbone(x)  # (B, C, h, w)
        pooled = F.adaptive_avg_pool2d(fmap, 1).flatten(1)  # (B, C)
        emb = self.head(pooled)
        if not normalise:
            return emb.float()
        return F.normalize(emb.float(), p=2.0, dim=1)
