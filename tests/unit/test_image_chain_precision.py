"""The extraction precision is part of the evaluated chain: chain.json carries it, old files mean fp32."""

import json

import pytest
import torch

from spherereid import device as device_policy
from spherereid.config import EvaluateConfig, TransformConfig
from spherereid.data.image_chain import ImageChain
from spherereid.deploy.model_source import chain_from_params


def test_chain_json_round_trips_the_precision_and_an_old_file_means_fp32():
    chain = ImageChain(stored_size=(36, 18), input_size=(32, 16), precision="bf16")
    raw = json.loads(json.dumps(chain.to_dict()))
    assert raw["precision"] == "bf16" and ImageChain.from_dict(raw) == chain
    del raw["precision"]  # a chain.json written before issue 18
    assert ImageChain.from_dict(raw).precision == "fp32"
    with pytest.raises(ValueError, match=r"ImageChain.precision must be fp32 or bf16 \(chain.json\)"):
        ImageChain(stored_size=(36, 18), input_size=(32, 16), precision="auto")


def test_from_config_records_the_resolved_evaluate_precision(monkeypatch):
    tf = TransformConfig()
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: False)
    resolved = device_policy.effective_precision(EvaluateConfig().precision, torch.device("cpu"))
    assert ImageChain.from_config((36, 18), tf, True, resolved).precision == "fp32"
    monkeypatch.setattr(device_policy, "cpu_has_native_bf16", lambda: True)
    resolved = device_policy.effective_precision(EvaluateConfig().precision, torch.device("cpu"))
    assert ImageChain.from_config((36, 18), tf, True, resolved).precision == "bf16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert device_policy.effective_precision("auto", torch.device("cuda")) == "bf16"


def test_an_unknown_evaluate_precision_is_a_clear_error():
    with pytest.raises(ValueError, match=r"evaluate.precision must be auto\|fp32\|bf16"):
        EvaluateConfig(precision="fp16")


def test_search_without_a_registered_model_uses_the_params_precision():
    from spherereid.config import load_params

    params = load_params("params.yaml")
    expected = device_policy.effective_precision(params.evaluate.precision, torch.device("cpu"))
    assert chain_from_params(params).precision == expected
