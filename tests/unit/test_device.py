"""Device and precision policy: auto is bf16 on CUDA devices of compute capability >= 8.0 and native-bf16
CPUs, fp16 is CUDA-only; a required GPU that is missing is an error; the training device becomes the current
CUDA device before any CUDA work."""

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


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((6, 1), "fp32"),
        ((7, 0), "fp32"),
        ((7, 5), "fp32"),
        ((8, 0), "bf16"),
        ((8, 9), "bf16"),
        ((9, 0), "bf16"),
    ],
)
def test_auto_is_bf16_only_on_cuda_devices_with_native_bf16(capability, expected):
    # P100 6.1, V100 7.0, T4 7.5: no native bf16; A100 8.0, L4 8.9, H100 9.0: native
    assert device_policy.auto_precision("cuda", capability, cpu_bf16=True) == expected
    assert device_policy.auto_precision("cuda", None, cpu_bf16=True) == "fp32"
    assert device_policy.auto_precision("cpu", None, cpu_bf16=True) == "bf16"
    assert device_policy.auto_precision("cpu", capability, cpu_bf16=False) == "fp32"


def test_auto_on_cuda_reads_the_devices_capability_and_logs_an_fp32_choice(monkeypatch, caplog):
    asked = []

    def capability(device=None):
        asked.append(device)
        return {0: (9, 0), 1: (7, 0)}[device.index]

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability)
    caplog.set_level("INFO", logger="spherereid.device")
    assert effective_precision("auto", torch.device("cuda", 0)) == "bf16"
    assert effective_precision("auto", torch.device("cuda", 1)) == "fp32"
    assert asked == [torch.device("cuda", 0), torch.device("cuda", 1)]
    assert "cuda:1 has compute capability 7.0 (< 8.0): no native bf16, precision auto is fp32" in caplog.text


def test_auto_is_bf16_on_cpus_with_native_bf16(monkeypatch):
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


def test_activate_device_sets_the_current_cuda_device_to_the_named_one():
    calls = []
    assert device_policy.activate_device(torch.device("cuda", 1), set_device=calls.append) == torch.device(
        "cuda", 1
    )
    device_policy.activate_device(torch.device("cuda"), set_device=calls.append)  # the current one: as is
    device_policy.activate_device(CPU, set_device=calls.append)
    assert calls == [1]


@pytest.fixture
def cuda_seen_but_unusable(monkeypatch):
    """A machine where torch reports CUDA (is_available) and records torch.cuda.set_device calls, while no
    kernel can run (this CPU machine): the order of device selection and first CUDA work becomes visible."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return calls


@pytest.mark.skipif(torch.cuda.is_available(), reason="a real GPU would run the probe kernel")
def test_a_single_process_on_cuda_1_sets_that_device_before_any_cuda_work(cuda_seen_but_unusable):
    from spherereid.config import TrainConfig
    from spherereid.training import distributed, trainer

    ctx = distributed.setup("cuda:1")  # the train stage's entry, one process (no torchrun)
    assert ctx.device == torch.device("cuda", 1) and cuda_seen_but_unusable == [1]
    cuda_seen_but_unusable.clear()
    # fit() without a context: set_device, then the probe kernel (which fails here: no GPU)
    with pytest.raises(RuntimeError, match="cuda:1: a first CUDA kernel failed"):
        trainer._placement(TrainConfig(epochs=1, device="cuda:1"), None)
    assert cuda_seen_but_unusable == [1]
