"""Typed options: nested dicts (YAML, ``key=value`` overrides) into dataclasses, each value coerced to its
field's type once, with one ``DifairError`` naming the fix for a bad key or value."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import types
import typing
from typing import Any

import yaml

from difair.errors import DifairError

_BOOL = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true/false (any case). YAML 1.1 also reads yes/no/on/off/y/n as booleans, which
    turns class and folder names such as ``no`` into ``False``; boolean options still take those words."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def load_yaml(text: str) -> Any:
    """``text`` parsed as YAML for options (config files, presets, ``--set`` values), booleans as in YAML 1.2."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 -- a SafeLoader subclass


_TRUE_WORDS = ("true", "yes", "on", "1")
_BOOL_WORDS = (*_TRUE_WORDS, "false", "no", "off", "0")  # what a boolean option takes


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), True
    return tp, False


def _coerce(value: Any, tp: Any, path: str) -> Any:
    base, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise DifairError(f"option {path} cannot be empty")
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise DifairError(f"option {path} is a group of options; set its fields as {path}.<name>=<value>")
        return build_dataclass(base, value, path + ".")
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _BOOL_WORDS:
            return value.lower() in _TRUE_WORDS
        raise DifairError(f"option {path} takes true or false, got {value!r}")
    if bool in typing.get_args(base) and isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return value.lower() in _TRUE_WORDS  # bool | str options (tensorboard: auto | true | false)
    if base is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise DifairError(f"option {path} takes a whole number, got {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DifairError(f"option {path} takes a number, got {value!r}")
        return float(value)
    if base is str:
        return str(value)
    if typing.get_origin(base) is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # one item: data.known=2
        if not isinstance(value, list):
            raise DifairError(
                f"option {path} takes a list (comma-separated on the command line), got {value!r}"
            )
        (item,) = typing.get_args(base) or (str,)
        if item is str:
            return [str(v) for v in value]
        return [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def build_dataclass(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """An instance of dataclass ``cls`` from nested dicts, each value coerced to its field's type."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise DifairError(
            f"unknown option {prefix}{unknown[0]}: valid options here are {', '.join(prefix + n for n in sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys, YAML values) to a nested config dict; returns a new dict."""
    if isinstance(overrides, str):
        raise DifairError(f"overrides are a list of key=value strings, got one string: [{overrides!r}]")
    out = json.loads(json.dumps(data))
    for item in overrides:
        key, _, raw = item.partition("=")
        if "=" not in item or not key.strip():
            raise DifairError(f"--set takes key=value, got {item!r}: e.g. --set optim.lr=0.1")
        try:
            value = load_yaml(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise DifairError(f"unknown option {key!r}: {part} is not a group of options")
        node[parts[-1]] = value
    return out
