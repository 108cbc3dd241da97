"""ReIDNet heads A-D: output sizes, unit norms, layer order, constructor_args rebuild."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spherereid.modeling.net import ReIDNet

X = torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("backbone", "head", "dim"),
    [
        ("tiny", "A", 32),
        ("tiny", "B", 24),
        ("tiny", "C", 24),
        ("tiny", "D", 24),
        ("resnet18", "A", 512),
        ("resnet18", "B", 24),
        ("resnet18", "C", 24),
        ("resnet18", "D", 24),
    ],
)
def test_heads_give_unit_norm_embeddings_of_the_right_size(backbone, head, dim):
    net = ReIDNet(backbone=backbone, head=head, embedding_dim=24, last_stride=1, dropout=0.5)
    assert net.embedding_dim == dim
    with torch.no_grad():
        out = net.eval()(X)
    assert out.shape == (3, dim) and out.dtype == torch.float32
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))


def test_train_mode_output_is_unit_norm_and_has_gradients():
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=16)
    out = net.train()(X)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    out[:, 0].sum().backward()
    assert net.backbone.stage1.conv.weight.grad.abs().sum() > 0


def test_head_d_matches_a_hand_composition():
    net = ReIDNet(backbone="tiny", head="D", embedding_dim=16).eval()
    bn1, drop, fc, bn2 = net.head
    assert (type(bn1), type(drop), type(fc), type(bn2)) == (
        nn.BatchNorm1d,
        nn.Dropout,
        nn.Linear,
        nn.BatchNorm1d,
    )
    assert drop.p == 0.5 and fc.in_features == 32 and fc.out_features == 16
    with torch.no_grad():
        for bn in (bn1, bn2):  # non-trivial statistics so that BN matters
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
        pooled = net.backbone(X).mean(dim=(2, 3))
        z = (pooled - bn1.running_mean) / torch.sqrt(bn1.running_var + bn1.eps)  # weight 1, bias 0 at init
        z = z @ fc.weight.t() + fc.bias
        z = (z - bn2.running_mean) / torch.sqrt(bn2.running_var + bn2.eps)
        torch.testing.assert_close(net(X), F.normalize(z, dim=1), rtol=1e-4, atol=1e-5)


def test_head_layers_b_and_c_and_init():
    b = ReIDNet(backbone="tiny", head="B", embedding_dim=8)
    c = ReIDNet(backbone="tiny", head="C", embedding_dim=8)
    assert isinstance(b.head, nn.Linear)
    assert [type(m) for m in c.head] == [nn.Linear, nn.BatchNorm1d]
    assert torch.all(c.head[1].weight == 1) and torch.all(c.head[1].bias == 0)
    assert torch.all(b.head.bias == 0)


def test_last_stride_one_doubles_the_final_map():
    one = ReIDNet(backbone="resnet18", head="A", last_stride=1).eval()
    two = ReIDNet(backbone="resnet18", head="A", last_stride=2).eval()
    with torch.no_grad():
        assert one.backbone(X).shape[-2:] == (4, 2)
        assert two.backbone(X).shape[-2:] == (2, 1)


def test_resnet50_head_d_forward():
    net = ReIDNet(backbone="resnet50", head="D", embedding_dim=1024).eval()
    with torch.no_grad():
        out = net(X[:2])
    assert out.shape == (2, 1024)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_constructor_args_rebuild_from_state_dict(tmp_path):
    weights = tmp_path / "tiny.pth"
    torch.save(ReIDNet(backbone="tiny", head="A").backbone.state_dict(), weights)
    net = ReIDNet(backbone="tiny", head="C", embedding_dim=12, pretrained=str(weights)).eval()
    assert net.constructor_args == {
        "backbone": "tiny",
        "head": "C",
        "embedding_dim": 12,
        "last_stride": 1,
        "dropout": 0.5,
        "pretrained": "none",
    }
    saved = {"constructor": net.constructor_args, "state_dict": net.state_dict()}
    torch.save(saved, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=True)
    rebuilt = ReIDNet(**loaded["constructor"])
    rebuilt.load_state_dict(loaded["state_dict"])
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(X), net(X))


def test_bad_arguments():
    with pytest.raises(ValueError, match="model.head"):
        ReIDNet(backbone="tiny", head="E")
    with pytest.raises(ValueError, match="model.dropout"):
        ReIDNet(backbone="tiny", dropout=1.0)
