"""Convolutional trunks: ResNet-18/34/50 from torchvision (no avgpool/fc) and a tiny test net.

`build_backbone(name, last_stride, pretrained)` returns `(trunk, channels)`: the trunk maps images
(B, 3, H, W) to a feature map (B, channels, h, w). With `last_stride=1` the first block of layer4
keeps the resolution of layer3, so h, w are twice those of torchvision's stride-2 network
(H/16 x W/16 instead of H/32 x W/32).

`pretrained` is "none", "imagenet" (torchvision's IMAGENET1K_V1 weights, loaded through the weights
API from the torch hub cache, which needs internet or a pre-placed file) or the path of a local
state_dict (.pth) with torchvision's key names (`conv1.weight`, `layer1.0.bn1.running_mean`, ...).
Classifier keys (`fc.*`) are ignored. Any failure raises `PretrainedWeightsError` naming the fix.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torchvision
from torch import nn

log = logging.getLogger(__name__)

RESNET_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
# torchvision weights enum and member per ResNet depth (IMAGENET1K_V1: the classic ImageNet weights).
IMAGENET_WEIGHTS = {
    "resnet18": ("ResNet18_Weights", "IMAGENET1K_V1"),
    "resnet34": ("ResNet34_Weights", "IMAGENET1K_V1"),
    "resnet50": ("ResNet50_Weights", "IMAGENET1K_V1"),
}
IGNORED_PREFIXES = ("fc.",)


class PretrainedWeightsError(RuntimeError):
    """Pretrained weights cannot be obtained or do not fit the backbone; the message says how to fix it."""


def _set_last_stride(layer4: nn.Sequential, last_stride: int) -> None:
    """Set the stride of layer4's first block (its strided conv and its downsample conv)."""
    for module in layer4[0].modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (last_stride, last_stride)


def _resnet(depth: str) -> Callable[[int], tuple[nn.Module, int]]:
    def factory(last_stride: int = 1) -> tuple[nn.Module, int]:
        net = getattr(torchvision.models, depth)(weights=None)
        _set_last_stride(net.layer4, last_stride)
        trunk = nn.Sequential(OrderedDict((name, getattr(net, name)) for name in RESNET_LAYERS))
        return trunk, net.fc.in_features

    factory.__name__ = f"build_{depth}"
    return factory


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[tuple[str, nn.Module]]:
    return [
        ("conv", nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)),
        ("bn", nn.BatchNorm2d(cout)),
        ("relu", nn.ReLU(inplace=True)),
    ]


def build_tiny(last_stride: int = 1) -> tuple[nn.Module, int]:
    """Three 3x3 conv-BN-ReLU stages (3->8->16->32 channels, ~6k parameters) for fast tests.

    Strides 2, 2, `last_stride`: a 64x32 input gives a 16x8 map with last_stride 1, 8x4 with 2.
    """
    stages = [(3, 8, 2), (8, 16, 2), (16, 32, last_stride)]
    trunk = nn.Sequential(
        OrderedDict(
            (f"stage{i + 1}", nn.Sequential(OrderedDict(_conv_bn_relu(cin, cout, stride))))
            for i, (cin, cout, stride) in enumerate(stages)
        )
    )
    for module in trunk.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return trunk, stages[-1][1]


BACKBONES: dict[str, Callable[[int], tuple[nn.Module, int]]] = {
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
    "tiny": build_tiny,
}


def build_backbone(name: str, last_stride: int = 1, pretrained: str = "none") -> tuple[nn.Module, int]:
    """Build the trunk `name` -> (module mapping (B, 3, H, W) to (B, C, h, w), C)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}' (known: {', '.join(BACKBONES)}); check model.backbone")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}; check model.last_stride")
    trunk, channels = BACKBONES[name](last_stride)
    if pretrained == "none":
        return trunk, channels
    if pretrained == "imagenet":
        state = _imagenet_state_dict(name)
        source = f"torchvision {'.'.join(IMAGENET_WEIGHTS[name])}"
    else:
        state = _local_state_dict(Path(pretrained))
        source = str(pretrained)
    _load_into(trunk, state, source)
    log.info("backbone %s: loaded pretrained weights from %s", name, source)
    return trunk, channels


def imagenet_cache_path(name: str) -> Path:
    """Where torchvision looks for (and downloads) the ImageNet weights of backbone `name`."""
    enum_name, member = IMAGENET_WEIGHTS[name]
    url = getattr(getattr(torchvision.models, enum_name), member).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _imagenet_state_dict(name: str) -> Mapping[str, torch.Tensor]:
    if name not in IMAGENET_WEIGHTS:
        raise PretrainedWeightsError(
            f"backbone '{name}' has no ImageNet weights; set model.pretrained to none "
            "or to the path of a local state_dict (.pth)"
        )
    enum_name, member = IMAGENET_WEIGHTS[name]
    weights = getattr(getattr(torchvision.models, enum_name), member)
    cache = imagenet_cache_path(name)
    try:
        return weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - network, hash or unpickling failure: all need the same fix
        raise PretrainedWeightsError(
            f"cannot load ImageNet weights {enum_name}.{member} for {name} "
            f"({type(exc).__name__}: {exc}). Fix: download {weights.url} and put it at {cache} "
            "(the torch hub cache; set TORCH_HOME to move it), or set model.pretrained to the path of a "
            "local state_dict (.pth), or to none to train from scratch"
        ) from None


def _local_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise PretrainedWeightsError(
            f"model.pretrained: weights file {path} not found; give an existing state_dict (.pth) path, "
            "imagenet or none"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise PretrainedWeightsError(
            f"{path}: cannot be loaded as a state_dict with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {exc}); save it with torch.save(model.state_dict(), path)"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedWeightsError(f"{path}: expected a state_dict (dict of name -> tensor)")
    return state


def _load_into(trunk: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly load `state` (minus fc.*) into `trunk`; name the first mismatched keys on failure."""
    kept = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    expected = trunk.state_dict()
    # Old torchvision checkpoints lack BatchNorm's num_batches_tracked; BatchNorm fills it in itself.
    missing = [k for k in expected if k not in kept and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in kept if k not in expected]
    if missing or unexpected:
        raise PretrainedWeightsError(
            f"{source}: keys do not match the backbone ({len(missing)} missing, e.g. {missing[:3]}; "
            f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}); is it a state_dict of the same "
            "model.backbone?"
        )
    wrong = [k for k, v in kept.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise PretrainedWeightsError(
            f"{source}: {len(wrong)} tensors have the wrong shape, e.g. {k}: {tuple(kept[k].shape)} "
            f"instead of {tuple(expected[k].shape)}; is it a state_dict of the same model.backbone?"
        )
    trunk.load_state_dict(kept, strict=True)
