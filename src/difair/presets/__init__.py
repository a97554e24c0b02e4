"""Presets: the paper's training protocol per (method, dataset), as YAML files users can read, copy and override.

Each ``<method>-<dataset>.yaml`` holds only the options the protocol fixes (with comments citing their source);
every other option keeps difair's default. Layering everywhere: preset < config file < ``--set`` / flags.
``folder:PATH`` datasets use the CIFAR10 preset of their method (the generic 32x32 RGB protocol).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from difair.config import TrainConfig, apply_overrides, is_folder
from difair.errors import DifairError
from difair.options import load_yaml

PRESET_DIR = Path(__file__).resolve().parent
GENERIC_DATASET = "cifar10"  # the preset dataset used for folder:PATH


def preset_names() -> list[str]:
    """Names of the shipped presets, ``<method>-<dataset>``, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``; a one-line error listing the choices when there is none."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise DifairError(
            f"unknown preset {name!r}: choose one of {', '.join(preset_names())} (difair presets list)"
        )
    return path


def preset_text(name: str) -> str:
    """The preset file as shipped, comments included (what ``difair presets show`` prints)."""
    return preset_path(name).read_text()


def preset_dict(name: str) -> dict[str, Any]:
    """The options preset ``name`` sets, as a nested dict (only those; the rest keep defaults)."""
    data = load_yaml(preset_text(name)) or {}
    if not isinstance(data, dict):
        raise DifairError(f"preset {name} is not a mapping of options: reinstall difair")
    return data


def preset_for(method: str, dataset: str) -> str | None:
    """The preset name for (method, dataset), or None when there is none (e.g. digits)."""
    if is_folder(dataset):
        dataset = GENERIC_DATASET
    name = f"{method}-{dataset}"
    return name if (PRESET_DIR / f"{name}.yaml").is_file() else None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, recursively for nested groups; returns a new dict."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options set in a (possibly partial) YAML config file, as a nested dict."""
    path = Path(path)
    if not path.is_file():
        raise DifairError(f"config file {path} does not exist")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DifairError(f"cannot read {path} as YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise DifairError(f"{path} must hold a mapping of options: see docs/configuration.md")
    return data


def load_named_preset(name: str, overrides: list[str] | None = None) -> TrainConfig:
    """Preset ``name`` on top of the defaults, then ``key=value`` overrides; validated."""
    data = merge(TrainConfig().to_dict(), preset_dict(name))
    cfg = TrainConfig.from_dict(apply_overrides(data, list(overrides or [])))
    cfg.validate()
    return cfg


def load_preset(method: str, dataset: str, overrides: list[str] | None = None) -> TrainConfig:
    """The paper's protocol for ``method`` on ``dataset`` (``folder:PATH`` keeps its name), then overrides."""
    name = preset_for(method, dataset)
    if name is None:
        raise DifairError(
            f"no preset for {method} on {dataset}: presets exist for {', '.join(preset_names())}"
        )
    return load_named_preset(name, [f"data.name={dataset}", *(overrides or [])])


__all__ = [
    "load_preset",
    "load_named_preset",
    "merge",
    "preset_dict",
    "preset_for",
    "preset_names",
    "preset_path",
    "preset_text",
    "read_config_file",
]
