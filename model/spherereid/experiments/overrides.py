"""`--set section.key=value` overrides applied to a whole Params, typed as the config field's type."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ..config import SECTIONS, ConfigError, Params, build_section


class OverrideError(ConfigError):
    """A bad `--set` override: the message names the key and the fix."""


def parse_assignments(items: Sequence[str], flag: str = "--set") -> dict[str, str]:
    """`["a.b=1", ...]` -> `{"a.b": "1"}`; a missing `=` or key is an error naming the item."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OverrideError(f"{flag} {item!r}: expected section.key=value (e.g. {flag} train.epochs=3)")
        out[key.strip()] = value
    return out


def _field_hint(section: str, key: str) -> Any:
    cls = SECTIONS.get(section)
    if cls is None:
        raise OverrideError(
            f"--set {section}.{key}: unknown section '{section}' (known: {', '.join(SECTIONS)})"
        )
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if key not in names:
        raise OverrideError(
            f"--set {section}.{key}: unknown key (known keys of {section}: {', '.join(names)})"
        )
    return hints[key]


def typed_value(dotted: str, text: str | Any) -> Any:
    """`text` (a string from the command line, or an already typed value) as field `dotted`'s type."""
    section, _, key = dotted.partition(".")
    if not key:
        raise OverrideError(f"--set {dotted}: expected section.key (e.g. model.head)")
    hint = _field_hint(section, key)
    value = yaml.safe_load(text) if isinstance(text, str) else text
    try:
        if hint is str:
            return text if isinstance(text, str) else str(value)
        if hint is bool:
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if hint is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError("expected an integer")
            return int(float(value))
        if hint is float:
            return float(value)
        if typing.get_origin(hint) is tuple:
            value = [] if value is None else value
            if not isinstance(value, list | tuple):
                raise ValueError("expected a list such as [20,26]")
            return list(value)
    except (TypeError, ValueError):
        want = getattr(hint, "__name__", str(hint))
        raise OverrideError(f"--set {dotted}={text}: expected a value of type {want}") from None
    return value


def apply_overrides(params: Params, overrides: Mapping[str, Any]) -> Params:
    """A copy of `params` with `{"section.key": value}` applied; each section is rebuilt and validated."""
    by_section: dict[str, dict[str, Any]] = {}
    for dotted, raw in overrides.items():
        section, _, key = dotted.partition(".")
        by_section.setdefault(section, {})[key] = typed_value(dotted, raw)
    changed = {}
    for section, values in by_section.items():
        merged = {**dataclasses.asdict(getattr(params, section)), **values}
        try:
            changed[section] = build_section(section, merged, source="--set")
        except ConfigError as exc:
            raise OverrideError(str(exc)) from None
    return dataclasses.replace(params, **changed)
