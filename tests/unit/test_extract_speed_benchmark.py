"""benchmarks/extract_speed.py's bare-inference leg leaves the network's parameters ordinary tensors (only
the forward passes run in inference mode), so the next legs can extract and train with the same network."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from extract_speed import bare_inference  # noqa: E402

from spherereid.modeling.net import ReIDNet  # noqa: E402


def test_bare_inference_keeps_the_parameters_out_of_inference_mode():
    torch.manual_seed(0)
    model = ReIDNet(backbone="tiny", head="D", embedding_dim=8)
    speed = bare_inference(model, torch.device("cpu"), (32, 16), n=4, batch=2, precision="fp32")
    assert speed > 0
    assert not any(t.is_inference() for t in [*model.parameters(), *model.buffers()])
    model.train()
    model(
        torch.randn(2, 3, 32, 16)
    ).sum().backward()  # an inference-tensor parameter cannot be saved for backward
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
