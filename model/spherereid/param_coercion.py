"""Undo the protobuf Struct round trip of KFP dict parameters before building a config section.

A KFP dict parameter travels as a protobuf Struct, whose only number type is a double: `{"epochs": 30}`
arrives as `{"epochs": 30.0}`. `coerce_section` turns integral floats back into ints for the fields
the section's dataclass declares as `int` (or `tuple[int, ...]`, or a union with `int` such as
train.checkpoint_every's `int | str`), and refuses a fractional value there.
Plain Python; nothing here imports kfp.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from .config import SECTIONS, TRAIN_SECTIONS, ConfigError, FitConfig, build_section


def _int_fields(cls: type) -> tuple[set[str], set[str]]:
    """Names of `int` fields (also `int | str`) and of `tuple[int, ...]` fields of a section dataclass."""
    hints = typing.get_type_hints(cls)
    scalars, sequences = set(), set()
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is int or (
            typing.get_origin(hint) in (typing.Union, types.UnionType) and int in typing.get_args(hint)
        ):
            scalars.add(f.name)
        elif typing.get_origin(hint) is tuple and typing.get_args(hint)[:1] == (int,):
            sequences.add(f.name)
    return scalars, sequences


def _to_int(value: Any, where: str) -> Any:
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(value)
    return value


def coerce_section(name: str, values: dict[str, Any], source: str = "<kfp>") -> dict[str, Any]:
    """Return a copy of `values` with integral floats turned into ints where section `name` wants ints."""
    cls = SECTIONS.get(name)
    if cls is None:
        raise ConfigError(f"{source}: unknown section '{name}' (known: {', '.join(SECTIONS)})")
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{name}' must be a mapping, got {type(values).__name__}")
    scalars, sequences = _int_fields(cls)
    out = dict(values)
    for key, value in values.items():
        where = f"{source}: {name}.{key}"
        if key in scalars:
            out[key] = _to_int(value, where)
        elif key in sequences and isinstance(value, list | tuple):
            out[key] = [_to_int(v, where) for v in value]
    return out


def build_from_struct(name: str, values: dict[str, Any], source: str = "<kfp>") -> Any:
    """Build section `name`'s dataclass from a dict that went through a protobuf Struct."""
    return build_section(name, coerce_section(name, values, source), source)


def fit_config_from_structs(structs: dict[str, Any], source: str = "<kfp>") -> FitConfig:
    """The training's FitConfig from `structs`, a mapping with a Struct-typed dict per TRAIN_SECTIONS name
    (other keys ignored: the train component passes all its inputs)."""
    return FitConfig(**{name: build_from_struct(name, structs[name], source) for name in TRAIN_SECTIONS})
