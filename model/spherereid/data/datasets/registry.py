"""The dataset registry: name -> (parser, options dataclass, the `data` keys that fill the options).

A parser module registers itself next to its parser, so adding a dataset touches that one module:

    @dataclass(frozen=True)
    class ToyOptions:
        pattern: str = ""

    @register("toy", options=ToyOptions, data_keys={"camera_pattern": "pattern"})
    def parse(root: Path, work_dir: Path, *, pattern: str = "") -> Splits: ...

`data_keys` maps flat keys of params.yaml's `data` section (config.DataConfig fields, kept flat for
existing params files) to fields of the options dataclass; the parser is called as
`parser(root, work_dir, **options fields)`. A dataset made by the synthesize stage says so with
`generated=True` (and `domain`, the camera network it is drawn from; "" = synthetic.domain), so
raw_source asks the registry rather than naming datasets. The package imports every module in it,
so registration needs no list elsewhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...config import DataConfig
from .base import DatasetError, Splits

Parser = Callable[..., Splits]
P = TypeVar("P", bound=Parser)


@dataclass(frozen=True)
class NoOptions:
    """Options of a dataset that has none."""


@dataclass(frozen=True)
class DatasetSpec:
    """One registered dataset: how to parse it and which options it takes."""

    name: str
    parser: Parser
    options: type = NoOptions  # a frozen dataclass whose fields are keyword arguments of `parser`
    data_keys: Mapping[str, str] = field(default_factory=dict)  # DataConfig field -> options field
    generated: bool = False  # made by the synthesize stage when no raw source is given
    domain: str = ""  # for a generated dataset: synthetic.domain to draw it with ("" = as configured)

    def options_from(self, data: DataConfig) -> Any:
        """This dataset's options built from the `data` section, e.g. DataConfig -> Msmt17Options."""
        return self.options(**{attr: getattr(data, key) for key, attr in self.data_keys.items()})

    def parse(self, root: Path, work_dir: Path, options: Any) -> Splits:
        """Run the parser with `options` (an instance of `self.options`) as keyword arguments."""
        kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        return self.parser(Path(root), Path(work_dir), **kwargs)


_REGISTRY: dict[str, DatasetSpec] = {}


def _origin(parser: Parser) -> tuple[str, str]:
    return parser.__module__, parser.__qualname__


def _check(spec: DatasetSpec) -> None:
    """Refuse a registration whose options or data keys do not line up (a programming error)."""
    options = spec.options
    if not (dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):  # type: ignore[attr-defined]
        raise DatasetError(f"dataset '{spec.name}': options must be a frozen dataclass, not {options!r}")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    attrs = {f.name for f in dataclasses.fields(options)}
    for key, attr in spec.data_keys.items():
        if key not in known or attr not in attrs:
            raise DatasetError(
                f"dataset '{spec.name}': data key '{key}' -> '{attr}' must map a data section key "
                f"({', '.join(sorted(known))}) to a field of {options.__name__}"
            )
    old = _REGISTRY.get(spec.name)
    same = old is not None and _origin(old.parser) == _origin(spec.parser)  # a module imported again
    if old is not None and not same:
        raise DatasetError(f"dataset '{spec.name}' is already registered (by {old.parser.__module__})")


def register(
    name: str,
    *,
    options: type = NoOptions,
    data_keys: Mapping[str, str] | None = None,
    generated: bool = False,
    domain: str = "",
) -> Callable[[P], P]:
    """Decorator: register the decorated parser under `name` (the parser itself is returned unchanged)."""

    def add(parser: P) -> P:
        spec = DatasetSpec(name, parser, options, dict(data_keys or {}), generated, domain)
        _check(spec)
        _REGISTRY[name] = spec
        return parser

    return add


def names() -> list[str]:
    """Registered dataset names, in registration order."""
    return list(_REGISTRY)


def lookup(name: str) -> DatasetSpec | None:
    """The spec of dataset `name`, or None when no such dataset is registered."""
    return _REGISTRY.get(name)


def get(name: str) -> DatasetSpec:
    """The spec of dataset `name`; DatasetError listing the known names when there is none."""
    spec = _REGISTRY.get(name)
    if spec is None:
        raise DatasetError(f"unknown dataset '{name}'; choose one of {', '.join(_REGISTRY)}")
    return spec
