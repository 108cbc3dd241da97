"""Backbone trunks: output shapes, last stride, pretrained weights from a file, the cache or nowhere."""

from urllib.error import URLError

import pytest
import torch

from spherereid.modeling.backbones import (
    BACKBONES,
    PretrainedWeightsError,
    build_backbone,
    imagenet_cache_path,
)

X = torch.zeros(2, 3, 64, 32)


@pytest.mark.parametrize(
    ("name", "channels", "last_stride", "hw"),
    [
        ("tiny", 32, 2, (8, 4)),  # 64x32 / 8
        ("tiny", 32, 1, (16, 8)),
        ("resnet18", 512, 2, (2, 1)),  # 64x32 / 32
        ("resnet18", 512, 1, (4, 2)),  # 64x32 / 16
    ],
)
@torch.no_grad()
def test_output_shape_and_last_stride(name, channels, last_stride, hw):
    trunk, c = build_backbone(name, last_stride=last_stride)
    assert c == channels
    assert trunk.eval()(X).shape == (2, channels, *hw)


@torch.no_grad()
def test_resnet50_trunk_shape():
    trunk, c = build_backbone("resnet50", last_stride=1)
    assert c == 2048
    assert trunk.eval()(X).shape == (2, 2048, 4, 2)


def test_registry_and_tiny_is_tiny():
    assert set(BACKBONES) == {"resnet18", "resnet34", "resnet50", "tiny"}
    trunk, _ = build_backbone("tiny")
    # 3x3 convs 3->8->16->32 without bias, plus BN affine pairs: 216 + 1152 + 4608 + 2 * (8 + 16 + 32)
    assert sum(p.numel() for p in trunk.parameters()) == 216 + 1152 + 4608 + 112
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")


def test_last_stride_touches_only_layer4_first_block():
    one, _ = build_backbone("resnet50", last_stride=1)
    two, _ = build_backbone("resnet50", last_stride=2)
    assert one.layer4[0].conv2.stride == (1, 1) and one.layer4[0].downsample[0].stride == (1, 1)
    assert two.layer4[0].conv2.stride == (2, 2) and two.layer4[0].downsample[0].stride == (2, 2)
    assert one.layer3[0].conv2.stride == (2, 2)


def test_local_state_dict_round_trip_ignores_fc(tmp_path):
    import torchvision

    source = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        source.conv1.weight.fill_(0.25)
        source.layer4[1].bn2.running_mean.fill_(3.0)
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)  # includes fc.weight / fc.bias
    trunk, _ = build_backbone("resnet18", last_stride=1, pretrained=str(path))
    loaded = trunk.state_dict()
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    assert float(trunk.conv1.weight.detach().mean()) == 0.25


def test_local_state_dict_errors(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(PretrainedWeightsError, match="nope.pth"):
        build_backbone("resnet18", pretrained=str(missing))
    other, _ = build_backbone("tiny")
    wrong = tmp_path / "tiny.pth"
    torch.save(other.state_dict(), wrong)
    with pytest.raises(PretrainedWeightsError, match=r"tiny.pth: keys do not match.*conv1.weight"):
        build_backbone("resnet18", pretrained=str(wrong))


def test_imagenet_without_network_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise URLError("no network (simulated)")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    cache = imagenet_cache_path("resnet18")
    assert cache == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(PretrainedWeightsError) as info:
        build_backbone("resnet18", pretrained="imagenet")
    message = str(info.value)
    assert str(cache) in message
    assert "to none" in message and "local state_dict" in message
    with pytest.raises(PretrainedWeightsError, match="no ImageNet weights"):
        build_backbone("tiny", pretrained="imagenet")


def test_imagenet_from_prefilled_cache(tmp_path, monkeypatch):
    """A file placed at the hub cache path is used offline (what the error message tells users to do)."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    source = torchvision.models.resnet18(weights=None)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    cache = imagenet_cache_path("resnet18")
    cache.parent.mkdir(parents=True)
    torch.save(state, cache)  # like torchvision's files: no num_batches_tracked
    trunk, _ = build_backbone("resnet18", pretrained="imagenet")
    torch.testing.assert_close(trunk.layer2[0].conv1.weight, source.layer2[0].conv1.weight, rtol=0, atol=0)
