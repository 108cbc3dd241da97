"""KFP dict parameters come back from a protobuf Struct with every number a float: undo it per field."""

import dataclasses

import pytest

from spherereid.config import ConfigError, load_params
from spherereid.param_coercion import build_from_struct, coerce_section

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _as_struct(value):
    """What google.protobuf.Struct does to a JSON value: numbers (not bools) become floats."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_as_struct(v) for v in value]
    return {k: _as_struct(v) for k, v in value.items()}


def test_int_fields_come_back_as_ints_and_floats_stay_floats():
    raw = {
        "epochs": 30.0,
        "seed": 0.0,
        "device": "cpu",
        "precision": "bf16",
        "cuda_graphs": False,
        "checkpoint_every": 2.0,
    }
    got = coerce_section("train", raw)
    assert got == {
        "epochs": 30,
        "seed": 0,
        "device": "cpu",
        "precision": "bf16",
        "cuda_graphs": False,
        "checkpoint_every": 2,
    }
    assert all(type(got[k]) is int for k in ("epochs", "seed", "checkpoint_every"))
    assert type(got["cuda_graphs"]) is bool
    optim = coerce_section("optim", {"lr": 1.0, "weight_decay": 0.0005, "betas": [0.9, 0.999]})
    assert type(optim["lr"]) is float and optim["betas"] == [0.9, 0.999]


def test_tuple_of_int_field_is_coerced_element_wise():
    got = coerce_section("schedule", {"milestones": [20.0, 26.0], "warmup_epochs": 5.0, "gamma": 0.1})
    assert got["milestones"] == [20, 26] and all(type(m) is int for m in got["milestones"])
    assert got["warmup_epochs"] == 5 and type(got["warmup_epochs"]) is int
    assert got["gamma"] == 0.1


def test_fractional_value_for_an_int_field_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"sampler\.p must be an integer, got 2\.5"):
        coerce_section("sampler", {"p": 2.5, "k": 4.0, "batch_size": 10.0})


def test_unknown_section_and_non_mapping_are_refused():
    with pytest.raises(ConfigError, match="unknown section 'nope'"):
        coerce_section("nope", {})
    with pytest.raises(ConfigError, match="must be a mapping"):
        coerce_section("train", [1, 2])


def test_every_section_of_params_yaml_survives_the_struct_round_trip():
    params = load_params(ROOT / "params.yaml")
    for field in dataclasses.fields(params):
        original = getattr(params, field.name)
        if not dataclasses.is_dataclass(original):
            continue
        struct = _as_struct(dataclasses.asdict(original))
        rebuilt = build_from_struct(field.name, struct)
        assert rebuilt == original, field.name
        for f in dataclasses.fields(original):
            assert type(getattr(rebuilt, f.name)) is type(getattr(original, f.name)), f"{field.name}.{f.name}"
