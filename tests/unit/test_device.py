"""Device and precision policy: precision applies on CUDA only; a required GPU that is missing is an error."""

import pytest
import torch

from spherereid.device import effective_precision, resolve_device


def test_precision_applies_on_cuda_only():
    assert effective_precision("bf16", torch.device("cpu")) == "fp32"
    assert effective_precision("bf16", torch.device("cuda")) == "bf16"
    with pytest.raises(ValueError, match="train.precision"):
        effective_precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_required_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match=r"device 'cuda' .* CUDA is not usable \(.+\)"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setenv("SPHEREREID_REQUIRE_CUDA", "1")  # what the pipeline sets on a GPU task
    with pytest.raises(ValueError, match="SPHEREREID_REQUIRE_CUDA"):
        resolve_device("auto")
    assert resolve_device("cpu").type == "cpu"
