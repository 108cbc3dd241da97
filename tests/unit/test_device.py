"""Device and precision policy: auto is bf16 on CUDA and native-bf16 CPUs, fp16 is CUDA-only; a required GPU
that is missing is an error."""

import pytest
import torch

from spherereid import device as device_policy
from spherereid.device import effective_precision, resolve_device

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_explicit_precisions_apply_on_every_device_and_fp16_needs_cuda():
    assert effective_precision("bf16", CPU) == "bf16" and effective_precision("fp32", CPU) == "fp32"
    assert effective_precision("bf16", CUDA) == "bf16" and effective_precision("fp16", CUDA) == "fp16"
    with pytest.raises(ValueError, match="fp16 needs CUDA.*train.precision"):
        effective_precision("fp16", CPU)
    with pytest.raises(ValueError, match="train.precision"):
        effective_precision("fp8", CPU)


def test_auto_is_bf16_on_cuda_and_on_cpus_with_native_bf16(monkeypatch):
    assert effective_precision("auto", CUDA) == "bf16"
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: True)
    assert effective_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: False)
    assert effective_precision("auto", CPU) == "fp32"


def test_native_bf16_detection_agrees_with_the_cpu_flags():
    flags = set(open("/proc/cpuinfo", encoding="utf-8").read().split())
    expected = bool(flags & {"amx_bf16", "avx512_bf16"})
    assert device_policy.cpu_has_native_bf16() == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_required_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match=r"device 'cuda' .* CUDA is not usable \(.+\)"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setenv("SPHEREREID_REQUIRE_CUDA", "1")  # what the pipeline sets on a GPU task
    with pytest.raises(ValueError, match="SPHEREREID_REQUIRE_CUDA"):
        resolve_device("auto")
    assert resolve_device("cpu").type == "cpu"


def test_channels_last_except_fp32_on_the_cpu():
    from spherereid.device import memory_format

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert memory_format(cpu, "fp32") == torch.contiguous_format
    assert memory_format(cpu, "bf16") == torch.channels_last
    assert memory_format(cuda, "fp32") == torch.channels_last
    assert memory_format(cuda, "bf16") == torch.channels_last
